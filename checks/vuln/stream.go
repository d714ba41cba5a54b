package vuln

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Level is how close a vulnerability is to the code: required (the module
// is in the build list), imported (a vulnerable package is imported) or
// called (a vulnerable symbol is reachable from the code).
type Level int

// Levels, ordered.
const (
	LevelNone Level = iota
	LevelRequired
	LevelImported
	LevelCalled
)

func (l Level) String() string {
	switch l {
	case LevelRequired:
		return "required"
	case LevelImported:
		return "imported"
	case LevelCalled:
		return "called"
	}
	return "none"
}

// ParseLevel reads a policy level; "" is called.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "called", "symbol":
		return LevelCalled, nil
	case "imported", "package":
		return LevelImported, nil
	case "required", "module":
		return LevelRequired, nil
	}
	return LevelNone, fmt.Errorf("unknown vulnerability level %q (use called, imported or required)", s)
}

// MarshalText writes the level name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level name.
func (l *Level) UnmarshalText(b []byte) error {
	if string(b) == "none" {
		*l = LevelNone
		return nil
	}
	v, err := ParseLevel(string(b))
	*l = v
	return err
}

// Frame mirrors one govulncheck trace frame (x/vuln's types are internal).
type Frame struct {
	Module   string    `json:"module"`
	Version  string    `json:"version,omitempty"`
	Package  string    `json:"package,omitempty"`
	Function string    `json:"function,omitempty"`
	Receiver string    `json:"receiver,omitempty"`
	Position *Position `json:"position,omitempty"`
}

// Position is a source position in a trace.
type Position struct {
	Filename string `json:"filename,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
}

type message struct {
	Config *struct {
		ProtocolVersion string `json:"protocol_version"`
		ScannerName     string `json:"scanner_name"`
		ScannerVersion  string `json:"scanner_version"`
		DB              string `json:"db"`
		DBLastModified  string `json:"db_last_modified"`
		GoVersion       string `json:"go_version"`
		ScanLevel       string `json:"scan_level"`
		ScanMode        string `json:"scan_mode"`
	} `json:"config"`
	OSV *struct {
		ID               string   `json:"id"`
		Summary          string   `json:"summary"`
		Aliases          []string `json:"aliases"`
		Withdrawn        string   `json:"withdrawn"`
		DatabaseSpecific *struct {
			URL string `json:"url"`
		} `json:"database_specific"`
	} `json:"osv"`
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []Frame `json:"trace"`
	} `json:"finding"`
}

// Vuln is one advisory as found in one scan, at its highest level.
type Vuln struct {
	ID           string   `json:"id"`
	Level        Level    `json:"level"`
	Module       string   `json:"module"`
	Version      string   `json:"version,omitempty"` // the version in use
	FixedVersion string   `json:"fixed_version,omitempty"`
	Package      string   `json:"package,omitempty"`
	Symbol       string   `json:"symbol,omitempty"` // vulnerable symbol (called only)
	Summary      string   `json:"summary,omitempty"`
	Aliases      []string `json:"aliases,omitempty"`
	URL          string   `json:"url,omitempty"`
	// Path and Line are where the code reaches the vulnerability (the
	// outermost frame with a position), relative to the scanned tree.
	Path string `json:"path,omitempty"`
	Line int    `json:"line,omitempty"`
}

// Stdlib reports whether the advisory is about the Go toolchain.
func (v Vuln) Stdlib() bool { return v.Module == "stdlib" || v.Module == "toolchain" }

// Scan is the parsed result of one govulncheck run.
type Scan struct {
	GoVersion      string `json:"go_version,omitempty"`
	ScannerVersion string `json:"scanner_version,omitempty"`
	DB             string `json:"db,omitempty"`
	DBLastModified string `json:"db_last_modified,omitempty"`
	ScanLevel      string `json:"scan_level,omitempty"`
	Vulns          []Vuln `json:"vulns"` // sorted by id, then module
}

// Limits of the stream parser.
const (
	maxMessages = 1 << 20
	maxTrace    = 4096
)

// ParseStream reads govulncheck's `-format json` output: a sequence of
// JSON objects. It keeps the highest level per advisory id and module. root, when
// set, is trimmed from positions so paths are relative to the scanned tree.
func ParseStream(r io.Reader, root string) (*Scan, error) {
	dec := json.NewDecoder(r)
	s := &Scan{}
	byID := map[string]*Vuln{}
	meta := map[string]Vuln{} // from osv messages
	sawConfig := false
	for n := 0; ; n++ {
		if n >= maxMessages {
			return nil, fmt.Errorf("govulncheck output has more than %d messages", maxMessages)
		}
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse govulncheck output (message %d): %w", n+1, err)
		}
		switch {
		case m.Config != nil:
			sawConfig = true
			s.GoVersion = m.Config.GoVersion
			s.ScannerVersion = m.Config.ScannerVersion
			s.DB = m.Config.DB
			s.DBLastModified = m.Config.DBLastModified
			s.ScanLevel = m.Config.ScanLevel
		case m.OSV != nil:
			v := Vuln{ID: m.OSV.ID, Summary: m.OSV.Summary, Aliases: m.OSV.Aliases}
			if m.OSV.DatabaseSpecific != nil {
				v.URL = m.OSV.DatabaseSpecific.URL
			}
			meta[m.OSV.ID] = v
		case m.Finding != nil:
			f := m.Finding
			if f.OSV == "" || len(f.Trace) == 0 {
				return nil, fmt.Errorf("govulncheck finding without id or trace (message %d)", n+1)
			}
			if len(f.Trace) > maxTrace {
				return nil, fmt.Errorf("govulncheck finding %s has a trace of %d frames", f.OSV, len(f.Trace))
			}
			v := fromFinding(f.OSV, f.FixedVersion, f.Trace, root)
			k := v.ID + "\x00" + v.Module // one advisory can name several modules
			if old, ok := byID[k]; !ok || v.Level > old.Level {
				byID[k] = &v
			}
		}
	}
	if !sawConfig {
		return nil, errors.New("govulncheck output has no config message: the scan did not run")
	}
	for _, v := range byID {
		if m, ok := meta[v.ID]; ok {
			v.Summary, v.Aliases, v.URL = m.Summary, m.Aliases, m.URL
		}
		s.Vulns = append(s.Vulns, *v)
	}
	sort.Slice(s.Vulns, func(i, j int) bool {
		a, b := s.Vulns[i], s.Vulns[j]
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Module < b.Module
	})
	if s.Vulns == nil {
		s.Vulns = []Vuln{}
	}
	return s, nil
}

func fromFinding(id, fixed string, trace []Frame, root string) Vuln {
	top := trace[0]
	v := Vuln{ID: id, FixedVersion: fixed, Module: top.Module, Version: top.Version, Package: top.Package}
	switch {
	case top.Function != "":
		v.Level = LevelCalled
		v.Symbol = top.Function
		if top.Receiver != "" {
			v.Symbol = strings.TrimPrefix(top.Receiver, "*") + "." + top.Function
		}
	case top.Package != "":
		v.Level = LevelImported
	default:
		v.Level = LevelRequired
	}
	// The outermost frame with a position is the caller in the scanned code.
	for i := len(trace) - 1; i >= 0; i-- {
		if p := trace[i].Position; p != nil && p.Filename != "" {
			v.Path = relPath(p.Filename, root)
			v.Line = p.Line
			break
		}
	}
	return v
}

func relPath(name, root string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	if root != "" {
		r := strings.TrimSuffix(strings.ReplaceAll(root, "\\", "/"), "/") + "/"
		if strings.HasPrefix(name, r) {
			return strings.TrimPrefix(name, r)
		}
	}
	return name
}
