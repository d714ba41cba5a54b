package gitcli_test

import (
	"strings"
	"testing"

	"github.com/agentgate/agentgate/internal/gitcli"
)

var sha = strings.Repeat("0", 40)

func FuzzParseRawNumstat(f *testing.F) {
	f.Add([]byte(":100644 100644 " + sha + " " + sha + " M\x00a\x001\t2\ta\x00"))
	f.Add([]byte(":100644 100644 " + sha + " " + sha + " R090\x00a\x00b\x00-\t-\t\x00a\x00b\x00"))
	f.Add([]byte(":000000 120000 " + sha + " " + sha + " A\x00l\x001\t0\tl\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		changes, err := gitcli.ParseRawNumstat(data)
		if err != nil {
			return
		}
		for _, c := range changes {
			if c.Path == "" || c.OldPath == "" || c.Added < 0 || c.Deleted < 0 {
				t.Fatalf("accepted an invalid change %+v", c)
			}
		}
	})
}

func FuzzParseNumstat(f *testing.F) {
	f.Add([]byte("1\t2\ta\x00"))
	f.Add([]byte("-\t-\tbin\x00"))
	f.Add([]byte("3\t0\t\x00old\x00new\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := gitcli.ParseNumstat(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Path == "" || e.Added < 0 || e.Deleted < 0 {
				t.Fatalf("accepted an invalid entry %+v", e)
			}
		}
	})
}

func FuzzParseRaw(f *testing.F) {
	f.Add([]byte(":100644 100755 " + sha + " " + sha + " M\x00g.sh\x00"))
	f.Add([]byte(":000000 160000 " + sha + " " + sha + " A\x00sub\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := gitcli.ParseRaw(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Path == "" || !strings.ContainsRune("ACDMRTUX", rune(e.Status)) {
				t.Fatalf("accepted an invalid entry %+v", e)
			}
		}
	})
}

func FuzzParseLsTree(f *testing.F) {
	f.Add([]byte("100644 blob " + sha + "      12\ta.txt\x00040000 tree " + sha + "       -\tdir\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := gitcli.ParseLsTree(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Path == "" {
				t.Fatal("accepted an empty path")
			}
		}
	})
}

func FuzzParseCommit(f *testing.F) {
	f.Add([]byte("tree " + sha + "\nparent " + sha + "\nauthor A <a@b> 1700000000 +0100\ncommitter A <a@b> 1700000000 -0530\n\nsubject\n\nPlan-Id: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := gitcli.ParseCommit(sha, data)
		if err != nil {
			return
		}
		for _, tr := range c.Trailers {
			if tr.Key == "" {
				t.Fatal("empty trailer key")
			}
		}
	})
}
