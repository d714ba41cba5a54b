package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest contract file agentgate reads (1 MiB). Real
// contract files are a few KiB; the cap bounds the work an attacker-supplied
// file can cause.
const MaxFileSize = 1 << 20

// maxJSONDepth bounds nesting in WORK_PLAN.json; the schema is four levels deep.
const maxJSONDepth = 64

// prepare applies the checks every contract file shares: size cap, empty
// file, encoding. It strips a UTF-8 byte order mark.
func prepare(file string, data []byte) ([]byte, Problems) {
	var probs Problems
	if len(data) > MaxFileSize {
		probs.add(file, 0, 0, "", "file is %d bytes; the limit is %d bytes (1 MiB): contract files are small, split or trim it", len(data), MaxFileSize)
		return nil, probs
	}
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		probs.add(file, 0, 0, "", "file is UTF-16 encoded; save it as UTF-8")
		return nil, probs
	}
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	if len(bytes.TrimSpace(data)) == 0 {
		probs.add(file, 0, 0, "", "file is empty; write the contract or delete the file")
		return nil, probs
	}
	if !utf8.Valid(data) {
		line, col := offsetPos(data, firstInvalidUTF8(data))
		probs.add(file, line, col, "", "file is not valid UTF-8; save it as UTF-8")
		return nil, probs
	}
	return data, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// offsetPos converts a byte offset to a 1-based line and column (columns
// count characters, not bytes).
func offsetPos(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	col = utf8.RuneCount(before[start:]) + 1
	return line, col
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses one YAML document into a node tree, refusing anchors,
// aliases (the "billion laughs" alias bomb cannot expand if aliases are never
// followed) and explicit tags. The returned node is the document's top value.
func parseYAML(file string, data []byte) (root *yaml.Node, probs Problems) {
	data, probs = prepare(file, data)
	if data == nil {
		return nil, probs
	}
	defer func() {
		// go-yaml has panicked on hostile input in the past; never let a
		// contract file crash the gate.
		if r := recover(); r != nil {
			root = nil
			probs = Problems{{File: file, Message: fmt.Sprintf("YAML parser failed on this file (%v); simplify it", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			probs.add(file, 0, 0, "", "file has no YAML content (only comments or blank lines)")
			return nil, probs
		}
		probs = append(probs, yamlError(file, err))
		return nil, probs
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		probs = append(probs, yamlError(file, err))
		return nil, probs
	default:
		probs.add(file, extra.Line, extra.Column, "", "file holds more than one YAML document (a second '---'); keep exactly one")
		return nil, probs
	}
	if len(doc.Content) == 0 {
		probs.add(file, 0, 0, "", "file has no YAML content (only comments or blank lines)")
		return nil, probs
	}
	root = doc.Content[0]
	if aliases := checkYAMLFeatures(file, root, &probs); aliases {
		return nil, probs
	}
	return root, probs
}

func yamlError(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Message: "YAML syntax error: " + m[2]}
	}
	return Problem{File: file, Message: "YAML syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

// checkYAMLFeatures rejects anchors, aliases and explicit tags anywhere in
// the tree. It reports whether an alias was found: then the document must
// not be decoded at all (anchors and tags alone are reported, and decoding
// goes on so that every other problem is reported too).
func checkYAMLFeatures(file string, root *yaml.Node, probs *Problems) bool {
	aliases := false
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if depth > 10000 { // the parser limits depth too; belt and braces
			return
		}
		switch {
		case n.Kind == yaml.AliasNode:
			probs.add(file, n.Line, n.Column, "", "YAML alias *%s is not allowed in contract files; write the value out", n.Value)
			aliases = true
			return
		case n.Anchor != "":
			probs.add(file, n.Line, n.Column, "", "YAML anchor &%s is not allowed in contract files; write values out instead of using anchors and aliases", n.Anchor)
		case n.Style&yaml.TaggedStyle != 0:
			probs.add(file, n.Line, n.Column, "", "explicit YAML tag %s is not allowed in contract files; remove it", n.Tag)
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(root, 0)
	return aliases
}

// parseJSON parses a JSON document into the same node tree the YAML parser
// produces, with line and column computed from byte offsets, so that one
// strict decoder serves both formats.
func parseJSON(file string, data []byte) (*yaml.Node, Problems) {
	data, probs := prepare(file, data)
	if data == nil {
		return nil, probs
	}
	r := &jsonReader{file: file, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	r.dec.UseNumber()
	root, err := r.value(0)
	if err != nil {
		return nil, append(probs, *err)
	}
	if off := r.nextStart(); off < len(data) {
		line, col := r.pos(off)
		probs.add(file, line, col, "", "unexpected content after the top-level JSON value; a WORK_PLAN.json holds exactly one object")
		return nil, probs
	}
	return root, probs
}

type jsonReader struct {
	file string
	data []byte
	dec  *json.Decoder
	// Position cursor: tokens are visited in increasing offset order, so
	// line and column are advanced incrementally (offsetPos from the start
	// for every token would be quadratic in the file size).
	curOff, curLine, curCol int
}

// pos returns the 1-based line and column of byte offset off.
func (r *jsonReader) pos(off int) (int, int) {
	if r.curLine == 0 || off < r.curOff {
		r.curOff, r.curLine, r.curCol = 0, 1, 1
	}
	off = min(off, len(r.data))
	for r.curOff < off {
		c := r.data[r.curOff]
		switch {
		case c == '\n':
			r.curLine++
			r.curCol = 1
		case c < utf8.RuneSelf || utf8.RuneStart(c):
			r.curCol++
		}
		r.curOff++
	}
	return r.curLine, r.curCol
}

// nextStart is the offset of the next token: the decoder's offset points
// just past the previous token, before any separator.
func (r *jsonReader) nextStart() int {
	off := int(r.dec.InputOffset())
	for off < len(r.data) && strings.IndexByte(" \t\r\n,:", r.data[off]) >= 0 {
		off++
	}
	return off
}

func (r *jsonReader) fail(off int, format string, args ...any) *Problem {
	line, col := r.pos(max(off, 0))
	return &Problem{File: r.file, Line: line, Col: col, Message: fmt.Sprintf(format, args...)}
}

func (r *jsonReader) syntax(err error, start int) *Problem {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return r.fail(int(se.Offset)-1, "JSON syntax error: %s", se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return r.fail(len(r.data), "JSON syntax error: unexpected end of file (unclosed object, array or string?)")
	default:
		return r.fail(start, "JSON syntax error: %v", err)
	}
}

func (r *jsonReader) value(depth int) (*yaml.Node, *Problem) {
	start := r.nextStart()
	tok, err := r.dec.Token()
	if err != nil {
		return nil, r.syntax(err, start)
	}
	line, col := r.pos(start)
	n := &yaml.Node{Line: line, Column: col}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, r.fail(start, "JSON nested deeper than %d levels", maxJSONDepth)
		}
		switch t {
		case '{':
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			for r.dec.More() {
				kstart := r.nextStart()
				ktok, err := r.dec.Token()
				if err != nil {
					return nil, r.syntax(err, kstart)
				}
				key, ok := ktok.(string)
				if !ok {
					return nil, r.fail(kstart, "JSON syntax error: object key must be a string")
				}
				kl, kc := r.pos(kstart)
				kn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: kl, Column: kc}
				vn, perr := r.value(depth + 1)
				if perr != nil {
					return nil, perr
				}
				n.Content = append(n.Content, kn, vn)
			}
		case '[':
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for r.dec.More() {
				vn, perr := r.value(depth + 1)
				if perr != nil {
					return nil, perr
				}
				n.Content = append(n.Content, vn)
			}
		default:
			return nil, r.fail(start, "JSON syntax error: unexpected %q", t.String())
		}
		end := r.nextStart()
		if _, err := r.dec.Token(); err != nil { // the closing delimiter
			return nil, r.syntax(err, end)
		}
	case string:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", t
	case json.Number:
		n.Kind, n.Value = yaml.ScalarNode, t.String()
		n.Tag = "!!int"
		if strings.ContainsAny(n.Value, ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(t)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}

// decoder copies a node tree into a Go value strictly: unknown fields,
// duplicate keys, wrong types and nulls are problems, and all of them are
// collected rather than stopping at the first.
type decoder struct {
	file  string
	tag   string // struct tag naming fields: "json" or "yaml"
	json  bool   // word messages for JSON ("object", "array")
	probs Problems
}

func (d *decoder) problem(n *yaml.Node, field, format string, args ...any) {
	d.probs.add(d.file, n.Line, n.Column, field, format, args...)
}

func (d *decoder) describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		if d.json {
			return "an object"
		}
		return "a mapping"
	case yaml.SequenceNode:
		if d.json {
			return "an array"
		}
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!str", "!!timestamp":
		return fmt.Sprintf("the string %q", clip(n.Value))
	case "!!int":
		return "the integer " + clip(n.Value)
	case "!!float":
		return "the number " + clip(n.Value)
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "null"
	}
	return "a " + n.ShortTag() + " value"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func (d *decoder) wantKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct:
		if d.json {
			return "an object"
		}
		return "a mapping"
	case reflect.Slice:
		if d.json {
			return "an array"
		}
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

func (d *decoder) typeError(n *yaml.Node, field string, t reflect.Type) {
	hint := ""
	if t.Kind() == reflect.String && n.Kind == yaml.ScalarNode && !d.json {
		hint = " (quote it)"
	}
	d.problem(n, field, "expected %s, got %s%s", d.wantKind(t), d.describe(n), hint)
}

type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // fieldKey -> *structFields

type fieldKey struct {
	t   reflect.Type
	tag string
}

func fieldsOf(t reflect.Type, tag string) *structFields {
	if v, ok := fieldCache.Load(fieldKey{t, tag}); ok {
		return v.(*structFields)
	}
	sf := &structFields{index: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		sf.index[name] = i
		sf.names = append(sf.names, name)
	}
	sort.Strings(sf.names)
	v, _ := fieldCache.LoadOrStore(fieldKey{t, tag}, sf)
	return v.(*structFields)
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind == yaml.AliasNode { // refused earlier; never follow one
		d.problem(n, field, "YAML aliases are not allowed")
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		d.problem(n, field, "value is null (empty); give %s or remove the key", d.wantKind(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), field)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.typeError(n, field, v.Type())
			return
		}
		fields := fieldsOf(v.Type(), d.tag)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || (k.ShortTag() != "!!str" && !d.json) {
				d.problem(k, field, "keys must be plain strings, got %s", d.describe(k))
				continue
			}
			name := k.Value
			fpath := joinField(field, name)
			if first, dup := seen[name]; dup {
				d.problem(k, fpath, "duplicate key %q (first defined at line %d); keep one", name, first.Line)
				continue
			}
			seen[name] = k
			idx, ok := fields.index[name]
			if !ok {
				d.problem(k, fpath, "unknown field %q; allowed here: %s", name, strings.Join(fields.names, ", "))
				continue
			}
			d.decode(val, v.Field(idx), fpath)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeError(n, field, v.Type())
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", field, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
			d.typeError(n, field, v.Type())
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.typeError(n, field, v.Type())
			return
		}
		i, err := parseInt(n)
		if err != nil || v.OverflowInt(i) {
			d.problem(n, field, "integer %s is out of range", clip(n.Value))
			return
		}
		v.SetInt(i)
	case reflect.Float64, reflect.Float32:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			d.typeError(n, field, v.Type())
			return
		}
		f, err := parseFloat(n)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.problem(n, field, "%s is not a finite number", clip(n.Value))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.typeError(n, field, v.Type())
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.problem(n, field, "%s is not a boolean", clip(n.Value))
			return
		}
		v.SetBool(b)
	default:
		d.problem(n, field, "internal error: cannot decode into %s", v.Type())
	}
}

func parseInt(n *yaml.Node) (int64, error) {
	if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		return i, nil
	}
	var i int64
	err := n.Decode(&i) // YAML forms such as 0x1F, 0o17, 1_000
	return i, err
}

func parseFloat(n *yaml.Node) (float64, error) {
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		return f, nil
	}
	var f float64
	err := n.Decode(&f)
	return f, err
}

// toGeneric converts a node tree to the plain values a JSON Schema
// validator takes (map[string]any, []any, string, json.Number, bool, nil).
func toGeneric(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = toGeneric(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = toGeneric(c)
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			if i, err := parseInt(n); err == nil {
				return json.Number(strconv.FormatInt(i, 10))
			}
		case "!!float":
			if f, err := parseFloat(n); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
			}
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b
			}
		case "!!null":
			return nil
		}
		return n.Value
	}
	return nil
}

// nodeAt finds the node at a JSON-pointer-like location (keys and indexes),
// returning the deepest node found and whether the whole path resolved.
func nodeAt(root *yaml.Node, loc []string) (*yaml.Node, bool) {
	n := root
	for _, tok := range loc {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return n, false
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return n, false
			}
			n = n.Content[i]
		default:
			return n, false
		}
	}
	return n, true
}

// keyAt returns the key node of field name in mapping n, or n itself.
func keyAt(n *yaml.Node, name string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				return n.Content[i]
			}
		}
	}
	return n
}

// fieldPath renders a location as limits.max_iterations or target_files[2].
func fieldPath(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		if _, err := strconv.Atoi(tok); err == nil {
			fmt.Fprintf(&b, "[%s]", tok)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// locator finds positions for semantic problems by field path.
type locator struct {
	file string
	root *yaml.Node
}

// at returns line and column of the value at loc (or of the closest
// existing parent). Path elements are keys or integer indexes.
func (l locator) at(loc ...any) (int, int) {
	if l.root == nil {
		return 0, 0
	}
	toks := make([]string, len(loc))
	for i, e := range loc {
		toks[i] = fmt.Sprint(e)
	}
	n, _ := nodeAt(l.root, toks)
	return n.Line, n.Column
}

func (l locator) add(probs *Problems, field string, loc []any, format string, args ...any) {
	line, col := l.at(loc...)
	probs.add(l.file, line, col, field, format, args...)
}
