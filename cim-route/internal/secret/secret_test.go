package secret

import "testing"

func TestMatch(t *testing.T) {
	s := NewSet([]string{"current-secret-0123", "", "older-secret-012345"})
	tests := []struct {
		in   string
		want int
	}{
		{"current-secret-0123", 0},
		{"older-secret-012345", 1},
		{"current-secret-012", -1},
		{"current-secret-01234", -1},
		{"", -1},
	}
	for _, tt := range tests {
		if got := s.Match(tt.in); got != tt.want {
			t.Errorf("Match(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (the empty value is dropped)", s.Len())
	}
	if (Set{}).Match("x") != -1 {
		t.Fatal("the empty set matched")
	}
}
