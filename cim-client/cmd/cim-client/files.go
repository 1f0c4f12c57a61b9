package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// savePath picks where :save writes a file named name (as its sender
// called it): arg when it names a file, inside arg when it is a directory,
// else the current directory. A sender's name never picks a directory, and
// an existing file is not overwritten unless arg names it: "x (1).png".
func savePath(name, arg string) (string, error) {
	base := safeName(name)
	dir := "."
	switch {
	case arg == "":
	case isDir(arg):
		dir = arg
	default:
		return arg, nil
	}
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for i := range 1000 {
		p := filepath.Join(dir, base)
		if i > 0 {
			p = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", stem, i, ext))
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p, nil
		}
	}
	return "", fmt.Errorf("too many files named %s in %s", base, dir)
}

// safeName keeps the last element of a sender's file name, without control
// characters; "file" when nothing usable is left.
func safeName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == ".." || name == "/" || name == "" || strings.HasPrefix(name, ".") && strings.Trim(name, ".") == "" {
		return "file"
	}
	return name
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
