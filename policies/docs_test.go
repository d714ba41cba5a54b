package policies

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsExamplesAreValid loads every annotated example in
// docs/contracts.md, so the reference cannot drift from the loaders.
func TestDocsExamplesAreValid(t *testing.T) {
	b, err := os.ReadFile("../docs/contracts.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	kinds := map[string]int{}
	for _, m := range blocks {
		lang, body := m[1], []byte(m[2])
		var err error
		kind := "WorkPlan"
		if lang == "yaml" {
			kind = regexp.MustCompile(`(?m)^kind: (\w+)`).FindStringSubmatch(m[2])[1]
		}
		switch kind {
		case "WorkPlan":
			_, err = LoadWorkPlan("contracts.md", body)
		case KindThread:
			_, err = LoadThread("contracts.md", body)
		case KindRequirements:
			_, err = LoadRequirements("contracts.md", body)
		case KindPolicy:
			_, err = LoadPolicy("contracts.md", body)
		default:
			t.Errorf("unknown kind %q in docs", kind)
		}
		if err != nil {
			t.Errorf("docs example of %s does not load:\n%v\n%s", kind, err, strings.TrimSpace(m[2]))
		}
		kinds[kind]++
	}
	for _, k := range []string{"WorkPlan", KindThread, KindRequirements, KindPolicy} {
		if kinds[k] != 1 {
			t.Errorf("docs have %d examples of %s, want 1", kinds[k], k)
		}
	}
}
