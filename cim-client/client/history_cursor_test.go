package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gocim/gocim/proto/codes"
)

// cursorRoute answers /history with scripted pages keyed by the before
// cursor, like a route that reads a bounded part of the inbox per request:
// short and empty pages with a next.
func cursorRoute(t *testing.T, pages map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			w.WriteHeader(http.StatusInsufficientStorage)
			fmt.Fprint(w, `{"code":5070,"message":"storage full: uploads may take 5000 bytes in all"}`)
			return
		}
		body, ok := pages[r.URL.Query().Get("before")]
		if !ok {
			t.Errorf("unexpected /history?%s", r.URL.RawQuery)
			body = `{"messages":[],"next":""}`
		}
		fmt.Fprintf(w, `{"code":9000,"message":"ok","data":%s}`, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func msgJSON(ids ...string) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf(`{"msgId":%q,"body":"text %s"}`, id, id))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestHistoryFollowsCursor: HistoryAll and HistoryFill go on through short
// and empty pages to the end; History alone keeps answering one page.
func TestHistoryFollowsCursor(t *testing.T) {
	srv := cursorRoute(t, map[string]string{
		"":   `{"messages":` + msgJSON("m5") + `,"next":"c1"}`,
		"c1": `{"messages":[],"next":"c2"}`,
		"c2": `{"messages":` + msgJSON("m3", "m2") + `,"next":"c3"}`,
		"c3": `{"messages":` + msgJSON("m1") + `,"next":""}`,
	})
	api := NewAPI(srv.URL, nil)
	ctx := context.Background()
	var got []string
	for m, err := range api.HistoryAll(ctx, "", "", HistoryQuery{Keyword: "x"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.GetMsgId())
	}
	if fmt.Sprint(got) != "[m5 m3 m2 m1]" {
		t.Fatalf("HistoryAll: %v", got)
	}
	page, err := api.HistoryFill(ctx, "", "", HistoryQuery{Keyword: "x"}, 3)
	if err != nil || len(page.Messages) != 3 || page.Next != "c3" {
		t.Fatalf("HistoryFill(3): %d messages next %q %v; want 3 and c3", len(page.Messages), page.Next, err)
	}
	one, err := api.History(ctx, "", "", HistoryQuery{Keyword: "x"})
	if err != nil || len(one.Messages) != 1 || one.Next != "c1" {
		t.Fatalf("History: %+v %v", one, err)
	}
}

// TestUploadRefusalIsClear: a full route's 507 matches ErrStorageFull and
// still carries the route's code.
func TestUploadRefusalIsClear(t *testing.T) {
	srv := cursorRoute(t, nil)
	_, err := NewAPI(srv.URL, nil).Upload(context.Background(), "", "", "f.bin", "", strings.NewReader("abc"), 3)
	if !errors.Is(err, ErrStorageFull) || CodeOf(err) != codes.StorageFull || !strings.Contains(err.Error(), "storage full") {
		t.Fatalf("upload to a full route: %v", err)
	}
}
