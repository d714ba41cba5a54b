package tests

import (
	"bytes"
	"strings"
	"testing"
)

const streamOK = `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestOne"}
{"Action":"output","Package":"m/a","Test":"TestOne","Output":"=== RUN   TestOne\n"}
{"Action":"pass","Package":"m/a","Test":"TestOne","Elapsed":0}
{"Action":"run","Package":"m/a","Test":"TestTwo"}
{"Action":"run","Package":"m/a","Test":"TestTwo/sub"}
{"Action":"output","Package":"m/a","Test":"TestTwo/sub","Output":"    a_test.go:9: boom\n"}
{"Action":"fail","Package":"m/a","Test":"TestTwo/sub","Elapsed":0}
{"Action":"fail","Package":"m/a","Test":"TestTwo","Elapsed":0}
{"Action":"run","Package":"m/a","Test":"TestSkip"}
{"Action":"skip","Package":"m/a","Test":"TestSkip","Elapsed":0}
{"Action":"output","Package":"m/a","Output":"FAIL\n"}
{"Action":"fail","Package":"m/a","Elapsed":0.01}
{"Action":"start","Package":"m/b"}
{"Action":"output","Package":"m/b","Output":"?   \tm/b\t[no test files]\n"}
{"Action":"skip","Package":"m/b","Elapsed":0}
`

func TestParseTestJSONOutcomes(t *testing.T) {
	run, err := ParseTestJSON(strings.NewReader(streamOK))
	if err != nil {
		t.Fatal(err)
	}
	a := run.Packages["m/a"]
	if a.Outcome != OutcomeFail || a.Tests["TestOne"] != OutcomePass || a.Tests["TestTwo"] != OutcomeFail ||
		a.Tests["TestTwo/sub"] != OutcomeFail || a.Tests["TestSkip"] != OutcomeSkip {
		t.Fatalf("m/a = %+v", a)
	}
	if !strings.Contains(a.Output, "a_test.go:9: boom") {
		t.Errorf("failure output not kept: %q", a.Output)
	}
	if run.Packages["m/b"].Outcome != OutcomeSkip {
		t.Errorf("m/b = %+v", run.Packages["m/b"])
	}
	want := []string{"m/a", "m/a.TestTwo", "m/a.TestTwo/sub"}
	if got := run.Failed(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Failed = %v", got)
	}
}

func TestParseTestJSONTruncatedRunIsIncomplete(t *testing.T) {
	in := `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestHangs"}
{"Action":"output","Package":"m/a","Test":"TestHangs","Output":"=== RUN   TestHangs\n"}`
	run, err := ParseTestJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	a := run.Packages["m/a"]
	if a.Outcome != OutcomeIncomplete || a.Tests["TestHangs"] != OutcomeIncomplete || !run.Red() {
		t.Fatalf("a run cut short must be red: %+v", a)
	}
}

func TestParseTestJSONBuildFailure(t *testing.T) {
	in := `{"ImportPath":"m/a [m/a.test]","Action":"build-output","Output":"# m/a\n"}
{"ImportPath":"m/a [m/a.test]","Action":"build-output","Output":"a.go:3:40: invalid operation\n"}
{"ImportPath":"m/a [m/a.test]","Action":"build-fail"}
{"Action":"start","Package":"m/a"}
{"Action":"output","Package":"m/a","Output":"FAIL\tm/a [build failed]\n"}
{"Action":"fail","Package":"m/a","Elapsed":0,"FailedBuild":"m/a [m/a.test]"}`
	run, err := ParseTestJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	a := run.Packages["m/a"]
	if a.Outcome != OutcomeFail || !a.BuildFailed || !strings.Contains(a.Output, "invalid operation") {
		t.Fatalf("%+v", a)
	}
}

func TestParseTestJSONToleratesWrapperNoise(t *testing.T) {
	in := "run_tests.sh: starting\n" + streamOK + "not json {\n{broken json\n"
	run, err := ParseTestJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if run.NonJSON != 3 || !strings.Contains(run.Stray, "run_tests.sh: starting") {
		t.Fatalf("NonJSON %d stray %q", run.NonJSON, run.Stray)
	}
}

func TestParseTestJSONRejectsOversizedLine(t *testing.T) {
	in := `{"Action":"output","Package":"m","Output":"` + strings.Repeat("x", maxLineBytes+10) + `"}`
	if _, err := ParseTestJSON(strings.NewReader(in)); err == nil {
		t.Fatal("an oversized line must be an error")
	}
}

func TestParseTestJSONBoundsKeptOutput(t *testing.T) {
	var b bytes.Buffer
	for i := 0; i < 5000; i++ {
		b.WriteString(`{"Action":"output","Package":"m","Output":"panic: lots of output here\n"}` + "\n")
	}
	run, err := ParseTestJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Packages["m"].Output) > maxKeptOutput {
		t.Fatalf("kept %d bytes", len(run.Packages["m"].Output))
	}
}

const profileOK = `mode: set
m/a/a.go:3.20,5.2 2 1
m/a/a.go:7.20,9.2 3 0
m/b/b.go:1.1,2.2 4 0
m/b/b.go:1.1,2.2 4 1
`

func TestParseProfileMergesDuplicateBlocks(t *testing.T) {
	p, err := ParseProfile(strings.NewReader(profileOK))
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Files["m/a/a.go"]; c != (Counts{2, 5}) {
		t.Errorf("a.go = %+v", c)
	}
	if c := p.Files["m/b/b.go"]; c != (Counts{4, 4}) {
		t.Errorf("b.go = %+v (a block covered by any run is covered)", c)
	}
	if pct, ok := p.Total().Percent(); !ok || pct < 66.6 || pct > 66.7 {
		t.Errorf("total = %v", pct)
	}
}

func TestParseProfileRejectsMalformed(t *testing.T) {
	cases := map[string]string{
		"no mode":        "m/a.go:1.1,2.2 1 1\n",
		"bad mode":       "mode: sometimes\n",
		"mixed modes":    "mode: set\nmode: count\n",
		"missing fields": "mode: set\nm/a.go:1.1,2.2 1\n",
		"bad position":   "mode: set\nm/a.go:1,2 1 1\n",
		"negative":       "mode: set\nm/a.go:1.1,2.2 -1 1\n",
		"no colon":       "mode: set\nm/a.go 1 1\n",
		"not numbers":    "mode: set\nm/a.go:1.1,2.2 x y\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseProfile(strings.NewReader(in)); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestParseProfileWindowsStylePathKeepsFile(t *testing.T) {
	p, err := ParseProfile(strings.NewReader("mode: count\nC:/src/a.go:1.1,2.2 1 7\n"))
	if err != nil || p.Files["C:/src/a.go"] != (Counts{1, 1}) {
		t.Fatalf("%+v %v", p, err)
	}
}

func FuzzParseTestJSON(f *testing.F) {
	f.Add([]byte(streamOK))
	f.Add([]byte(`{"ImportPath":"m [m.test]","Action":"build-fail"}`))
	f.Add([]byte("plain text\n{\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		run, err := ParseTestJSON(bytes.NewReader(in))
		if err != nil {
			return
		}
		for name, p := range run.Packages {
			switch p.Outcome {
			case OutcomePass, OutcomeFail, OutcomeSkip, OutcomeIncomplete:
			default:
				t.Fatalf("package %q has outcome %q", name, p.Outcome)
			}
			if len(p.Output) > maxKeptOutput {
				t.Fatalf("kept %d bytes of output", len(p.Output))
			}
		}
	})
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte(profileOK))
	f.Add([]byte("mode: atomic\n"))
	f.Add([]byte("mode: set\na.go:1.1,1.1 0 0\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParseProfile(bytes.NewReader(in))
		if err != nil {
			return
		}
		for f, c := range p.Files {
			if c.Covered < 0 || c.Covered > c.Total {
				t.Fatalf("%s: %+v", f, c)
			}
		}
	})
}
