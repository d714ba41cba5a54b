package githubdouble

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
)

// spec is the loaded OpenAPI subset with a router that understands GitHub's
// multi-segment parameters. It is loaded once per test binary.
type spec struct {
	doc       *openapi3.T
	templates []*template
}

type template struct {
	path    string // OpenAPI template, e.g. /repos/{owner}/{repo}/git/refs/{ref}
	re      *regexp.Regexp
	params  []string
	literal int // number of literal characters (more = more specific)
	multi   int // number of multi-segment parameters
	item    *openapi3.PathItem
}

var (
	specOnce sync.Once
	specVal  *spec
	specErr  error
)

func loadSpec() (*spec, error) {
	specOnce.Do(func() {
		root, err := SharedTestdata()
		if err != nil {
			specErr = err
			return
		}
		file := filepath.Join(root, "openapi", "api.github.com.subset.json")
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(file)
		if err != nil {
			specErr = fmt.Errorf("githubdouble: load %s: %w", file, err)
			return
		}
		if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
			specErr = fmt.Errorf("githubdouble: %s is not a valid OpenAPI document: %w", file, err)
			return
		}
		s := &spec{doc: doc}
		for path, item := range doc.Paths.Map() {
			t, err := compileTemplate(path, item)
			if err != nil {
				specErr = err
				return
			}
			s.templates = append(s.templates, t)
		}
		sort.Slice(s.templates, func(i, j int) bool { return s.templates[i].path < s.templates[j].path })
		specVal = s
	})
	return specVal, specErr
}

var paramSeg = regexp.MustCompile(`^\{([^{}]+)\}$`)

// compileTemplate turns an OpenAPI path into a regular expression over the
// request's escaped path. A parameter marked x-multi-segment may span
// several segments (GitHub's {ref}, {branch}, {commit_sha}).
func compileTemplate(path string, item *openapi3.PathItem) (*template, error) {
	multi := map[string]bool{}
	collect := func(ps openapi3.Parameters) {
		for _, p := range ps {
			if p.Value == nil || p.Value.In != "path" {
				continue
			}
			if v, ok := p.Value.Extensions["x-multi-segment"].(bool); ok && v {
				multi[p.Value.Name] = true
			}
		}
	}
	collect(item.Parameters)
	for _, op := range item.Operations() {
		collect(op.Parameters)
	}
	t := &template{path: path, item: item}
	var b strings.Builder
	b.WriteString("^")
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		b.WriteString("/")
		if m := paramSeg.FindStringSubmatch(seg); m != nil {
			t.params = append(t.params, m[1])
			if multi[m[1]] {
				t.multi++
				b.WriteString("(.+)")
			} else {
				b.WriteString("([^/]+)")
			}
			continue
		}
		if strings.ContainsAny(seg, "{}") {
			return nil, fmt.Errorf("githubdouble: unsupported path template %q", path)
		}
		t.literal += len(seg) + 1
		b.WriteString(regexp.QuoteMeta(seg))
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("githubdouble: template %q: %w", path, err)
	}
	t.re = re
	return t, nil
}

// route finds the operation for an escaped request path (without the API
// mount prefix). Among matching templates the most literal one wins, so
// /repos/o/r/commits/abc/check-runs is list-for-ref, not a ref named
// "abc/check-runs".
func (s *spec) route(method, escapedPath string) (*routers.Route, map[string]string, error) {
	var best *template
	var bestM []string
	for _, t := range s.templates {
		m := t.re.FindStringSubmatch(escapedPath)
		if m == nil {
			continue
		}
		if best == nil || t.literal > best.literal || (t.literal == best.literal && t.multi < best.multi) {
			best, bestM = t, m
		}
	}
	if best == nil {
		return nil, nil, fmt.Errorf("no operation in the OpenAPI subset matches path %s", escapedPath)
	}
	op := best.item.GetOperation(method)
	if op == nil {
		return nil, nil, fmt.Errorf("path template %s has no %s operation in the OpenAPI subset", best.path, method)
	}
	params := map[string]string{}
	for i, name := range best.params {
		v, err := url.PathUnescape(bestM[i+1])
		if err != nil {
			return nil, nil, fmt.Errorf("path parameter %s: %w", name, err)
		}
		params[name] = v
	}
	return &routers.Route{Spec: s.doc, Path: best.path, PathItem: best.item, Method: method, Operation: op}, params, nil
}

// example returns GitHub's example body for the operation's success
// response (decoded JSON) and its status code.
func example(op *openapi3.Operation) (int, any) {
	for _, code := range []int{200, 201, 202, 204} {
		rr := op.Responses.Status(code)
		if rr == nil || rr.Value == nil {
			continue
		}
		mt := rr.Value.Content.Get("application/json")
		if mt == nil {
			return code, nil
		}
		if len(mt.Examples) > 0 {
			keys := make([]string, 0, len(mt.Examples))
			for k := range mt.Examples {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			pick := keys[0]
			if _, ok := mt.Examples["default"]; ok {
				pick = "default"
			}
			if ex := mt.Examples[pick]; ex != nil && ex.Value != nil {
				return code, ex.Value.Value
			}
		}
		return code, mt.Example
	}
	return 200, nil
}
