// Package envflag lets every flag of a FlagSet fall back to an environment
// variable: flag "zk-root" reads CIM_ZK_ROOT when not given on the command
// line. Flags given explicitly always win.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Prefix is put before the upper-cased flag name.
const Prefix = "CIM_"

// Name returns the environment variable that backs flag name.
func Name(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable, if present. It also appends the
// variable's name to each flag's usage so --help shows it.
func Parse(fs *flag.FlagSet, args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, Name(f.Name))
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(Name(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", Name(f.Name), v, e)
			}
		}
	})
	return err
}

// List splits a comma-separated flag value, trimming spaces and dropping
// empty items: "a, b,,c" is [a b c].
func List(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
