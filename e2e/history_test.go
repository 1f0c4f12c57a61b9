package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestTerminalReceiptsHistoryFiles drives the terminal through the reliable
// delivery features: ✓ on SENT, :status reaching "read" once the peer was
// shown the message, :his with and without a keyword, and :file / :save.
func TestTerminalReceiptsHistoryFiles(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	alice := c.Terminal(t, "alice")
	alice.Expect(t, 0, `^\* logged in as alice`)
	bob := c.Terminal(t, "bob")
	bob.Expect(t, 0, `^\* logged in as bob`)

	alice.Send(t, "bob;;hello bob")
	alice.Expect(t, 0, `^\* ✓ sent to bob: hello bob$`)
	bob.Expect(t, 0, `^`+stamp+`alice: hello bob$`)
	bob.Send(t, "alice;;hi alice")
	alice.Expect(t, 0, `^`+stamp+`bob: hi alice$`)

	// bob's terminal marked "hello bob" read when it showed it.
	status := regexp.MustCompile(`to bob: hello bob (.+)$`)
	harness.Eventually(t, wait, func() error {
		n := len(alice.Lines())
		alice.Send(t, ":status")
		_, line := alice.Expect(t, n, `to bob: hello bob`)
		if m := status.FindStringSubmatch(line); m == nil || m[1] != "read" {
			return &statusErr{line}
		}
		return nil
	})

	n := len(alice.Lines())
	alice.Send(t, ":his bob")
	i, _ := alice.Expect(t, n, `^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] alice: hello bob$`)
	alice.Expect(t, i, `^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] bob: hi alice$`) // oldest first
	n = len(alice.Lines())
	alice.Send(t, ":his bob hi al")
	alice.Expect(t, n, `bob: hi alice$`)
	for _, l := range alice.Lines()[n:] {
		if strings.Contains(l, "hello bob") {
			t.Fatalf(":his with keyword %q printed %q", "hi al", l)
		}
	}

	// A small file goes inline; the recipient saves it.
	src := filepath.Join(t.TempDir(), "note.txt")
	content := []byte("file content\nline two\n")
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.Send(t, ":file bob "+src)
	_, line := bob.Expect(t, 0, `alice: \[file note\.txt, 22 bytes\] \(:save \d+\)$`)
	idx := regexp.MustCompile(`:save (\d+)\)$`).FindStringSubmatch(line)[1]
	dst := filepath.Join(t.TempDir(), "saved.txt")
	bob.Send(t, ":save "+idx+" "+dst)
	bob.Expect(t, 0, `^\* saved note\.txt \(22 bytes\) to `)
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("saved file: %q, %v; want %q", got, err, content)
	}
}

type statusErr struct{ line string }

func (e *statusErr) Error() string { return "status line " + e.line + " is not read yet" }

// TestHistoryAndLargeFiles uses the SDK: history pages both directions of a
// conversation, newest first, filtered by keyword; a file larger than a frame
// goes through the route's upload endpoint and arrives byte for byte.
func TestHistoryAndLargeFiles(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	alice := c.Connect(t, "alice")
	bob := c.Connect(t, "bob")
	for _, m := range []struct {
		from *harness.User
		to   string
		text string
	}{{alice, "bob", "one"}, {bob, "alice", "two"}, {alice, "bob", "three"}} {
		if _, err := m.from.Send(ctxT(t), m.to, m.text); err != nil {
			t.Fatal(err)
		}
		peer := bob
		if m.to == "alice" {
			peer = alice
		}
		peer.WaitFor(t, 0, wait, m.text, harness.IsMessage(m.text))
	}

	var texts []string
	q := client.HistoryQuery{Peer: "bob", Limit: 2}
	for page := 0; page < 3; page++ {
		p, err := alice.History(ctxT(t), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			texts = append(texts, string(m.Body))
		}
		if p.Next == "" {
			break
		}
		q.Before = p.Next
	}
	if strings.Join(texts, ",") != "three,two,one" {
		t.Fatalf("history pages gave %v, want three,two,one (newest first, both directions)", texts)
	}
	p, err := alice.History(ctxT(t), client.HistoryQuery{Peer: "bob", Keyword: "TW"})
	if err != nil || len(p.Messages) != 1 || string(p.Messages[0].Body) != "two" {
		t.Fatalf("keyword history: %v, %v; want just \"two\"", p.Messages, err)
	}

	big := make([]byte, 300<<10) // well over the 64 KiB frame limit
	rand.Read(big)
	src := filepath.Join(t.TempDir(), "photo.bin")
	if err := os.WriteFile(src, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendFile(ctxT(t), "bob", src); err != nil {
		t.Fatal(err)
	}
	i := bob.WaitFor(t, 0, wait, "the file message", func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg.Kind == cimpb.Kind_KIND_FILE
	})
	m := bob.Seen()[i].Msg
	if m.File.GetRef() == "" || m.File.GetName() != "photo.bin" || m.File.GetSize() != int64(len(big)) {
		t.Fatalf("file message %v: want an uploaded ref named photo.bin of %d bytes", m.File, len(big))
	}
	dst := filepath.Join(t.TempDir(), "got.bin")
	if err := bob.SaveFile(ctxT(t), m, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, big) {
		t.Fatalf("downloaded %d bytes differ from the %d sent", len(got), len(big))
	}
}
