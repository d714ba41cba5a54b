package basecache

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPutThenGetRoundTrips(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "c")}
	k := Key("abc123", "go1.26.8", "go test -json")
	if s.Get(k, new(map[string]int)) || s.Has(k) {
		t.Fatal("empty store returned an entry")
	}
	if err := s.Put(k, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if !s.Get(k, &got) || got["a"] != 1 || !s.Has(k) {
		t.Fatalf("got %v", got)
	}
}

func TestKeyDependsOnEveryPart(t *testing.T) {
	if Key("a", "bc") == Key("ab", "c") || Key("a") == Key("b") {
		t.Fatal("keys collide")
	}
}

func TestDamagedOrHostileEntriesAreMisses(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: dir}
	k := Key("x")
	os.WriteFile(filepath.Join(dir, k+".json"), []byte("{not json"), 0o644)
	var v map[string]any
	if s.Get(k, &v) {
		t.Fatal("damaged entry read as a hit")
	}
	for _, bad := range []string{"", "../etc/passwd", "a/b", "x.y"} {
		if s.Get(bad, &v) {
			t.Errorf("key %q accepted", bad)
		}
		if err := s.Put(bad, 1); err == nil {
			t.Errorf("Put with key %q accepted", bad)
		}
	}
	if err := (Store{}).Put(k, 1); err == nil {
		t.Fatal("a store without a directory must refuse")
	}
}
