package commands

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // command words found, in order
	}{
		{"plain", "/approve-promotion", []string{"approve-promotion"}},
		{"with sha and CRLF", "looks good\r\n/approve-promotion abc1234\r\n", []string{"approve-promotion"}},
		{"upper case", "/APPROVE-PROMOTION", []string{"approve-promotion"}},
		{"not at line start", "please /approve-promotion", nil},
		{"leading space", " /approve-promotion", nil},
		{"indented code block", "    /approve-promotion", nil},
		{"tab-indented", "\t/approve-promotion", nil},
		{"quoted", "> /approve-promotion", nil},
		{"nested quote", "> > /approve-promotion", nil},
		{"fenced code block", "```\n/approve-promotion\n```", nil},
		{"tilde fence", "~~~sh\n/approve-promotion\n~~~\n", nil},
		{"unclosed fence swallows the rest", "```\n/approve-promotion", nil},
		{"longer closing fence needed", "````\n```\n/approve-promotion\n````\n/hold", []string{"hold"}},
		{"after a closed fence", "```go\nx := 1\n```\n/hold", []string{"hold"}},
		{"inside html comment", "<!--\n/approve-promotion\n-->", nil},
		{"after one-line html comment", "<!-- note -->\n/hold", []string{"hold"}},
		{"inline code is not a command", "`/approve-promotion`", nil},
		{"several commands", "/hold\nreason\n/recheck", []string{"hold", "recheck"}},
		{"substring is not a command", "/approve-promotionplease", []string{"approve-promotionplease"}},
		{"path is not a command word", "/usr/bin/x", nil},
		{"slash alone", "/", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, l := range Parse(tt.body) {
				got = append(got, l.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("Parse(%q) = %v, want %v", tt.body, got, tt.want)
			}
		})
	}
}

func TestParseBoundsHostileInput(t *testing.T) {
	if got := Parse(strings.Repeat("/hold\n", 1000)); len(got) != MaxCommandsPerComment {
		t.Fatalf("got %d commands, want the cap %d", len(got), MaxCommandsPerComment)
	}
	if got := Parse("/hold\n" + strings.Repeat("x", MaxBodyBytes)); got != nil {
		t.Fatalf("oversized body parsed: %v", got)
	}
	if got := Parse(strings.Repeat("```\n", 10000) + "/hold"); len(got) != 0 && len(got) != 1 {
		t.Fatalf("fence storm: %v", got)
	}
}

func TestApprovePromotionPattern(t *testing.T) {
	for line, want := range map[string]string{
		"/approve-promotion":                  "",
		"/approve-promotion abcdef1":          "abcdef1",
		"/Approve-Promotion   ABCDEF1234  ":   "ABCDEF1234",
		"/approve-promotion abc":              "-", // too short
		"/approve-promotion abcdef1 extra":    "-",
		"/approve-promotion HEAD":             "-",
		"/approve-promotion abcdef1;rm -rf /": "-",
	} {
		m := approvePromotionRe.FindStringSubmatch(line)
		switch {
		case want == "-" && m != nil:
			t.Errorf("%q matched", line)
		case want != "-" && (m == nil || m[1] != want):
			t.Errorf("%q: %v, want sha %q", line, m, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/approve-promotion abcdef1", "> /hold", "```\n/hold\n```", "<!--\n/x\n-->\n/recheck", "\r\n/resume-run p-1\r\n", "~~~\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		lines := Parse(body)
		if len(lines) > MaxCommandsPerComment {
			t.Fatalf("%d commands", len(lines))
		}
		all := strings.Split(body, "\n")
		for _, l := range lines {
			if l.Text == "" || l.Text[0] != '/' {
				t.Fatalf("command line %q does not start with /", l.Text)
			}
			if l.N < 1 || l.N > len(all) || !strings.HasPrefix(all[l.N-1], l.Text) {
				t.Fatalf("line %d %q not found in body", l.N, l.Text)
			}
			if l.Name != strings.ToLower(l.Name) {
				t.Fatalf("name %q not lower-cased", l.Name)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	body := strings.Repeat("Some review text with `code` and > quotes.\n```\n/approve-promotion\n```\n", 700) + "/approve-promotion abcdef1\n"
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if len(Parse(body)) != 1 {
			b.Fatal("command not found")
		}
	}
}
