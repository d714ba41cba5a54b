package store

import "testing"

func TestRebindDollar(t *testing.T) {
	cases := map[string]string{
		"SELECT ?":                               "SELECT $1",
		"INSERT INTO t VALUES (?, ?, '?', ?)":    "INSERT INTO t VALUES ($1, $2, '?', $3)",
		`SELECT "a?b", 'it''s ?' FROM t WHERE ?`: `SELECT "a?b", 'it''s ?' FROM t WHERE $1`,
		"SELECT 1 -- why?\nWHERE x = ?":          "SELECT 1 -- why?\nWHERE x = $1",
		"'unterminated ?":                        "'unterminated ?",
		"":                                       "",
	}
	for in, want := range cases {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q) = %q; want %q", in, got, want)
		}
	}
}

func FuzzRebindDollar(f *testing.F) {
	for _, s := range []string{"SELECT ?", "'?'", `"?"`, "-- ?\n?", "'", "''?''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := rebindDollar(q)
		if len(out) < len(q) {
			t.Fatalf("rebind shortened %q to %q", q, out)
		}
	})
}

func TestRedactHidesPassword(t *testing.T) {
	cases := map[string]string{
		"postgres://u:pw@h/db":   "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":      "postgres://u@h/db",
		"postgres://u:p@ss@h/db": "postgres://u:xxxxx@h/db",
		"/path/with@at/file.db":  "/path/with@at/file.db",
	}
	for in, want := range cases {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q; want %q", in, got, want)
		}
	}
}
