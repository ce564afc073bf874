package settings

import (
	"slices"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	base := Default()
	base.Model = "/models/flag"
	tests := []struct {
		name     string
		raw      string
		want     func(*Settings)
		problems string
	}{
		{"flat", `{"steps": 8, "sampler": "margin", "temperature": 0.5, "unknown": 1}`, func(s *Settings) {
			s.Steps, s.Sampler, s.Temperature = 8, "margin", 0.5
		}, ""},
		{"nested", `{"diffill": {"maxTokens": 32, "contextTokens": 512, "holeMarker": "TODO", "debounce": 0}}`, func(s *Settings) {
			s.MaxTokens, s.ContextTokens, s.HoleMarker, s.Debounce = 32, 512, "TODO", 0
		}, ""},
		{"null restores the base", `{"model": null, "device": "cpu"}`, func(s *Settings) { s.Device = "cpu" }, ""},
		{"bad values are left out, the rest applies", `{"steps": -1, "sampler": "best", "temperature": "hot", "holeMarker": "", "maxTokens": 1.5, "debounce": 20}`,
			func(s *Settings) { s.Debounce = 20 }, "holeMarker maxTokens sampler steps temperature"},
		{"empty", ``, func(*Settings) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := base
			cur.Model = "/models/other"
			want := cur
			if tt.name == "null restores the base" {
				want.Model = base.Model
			}
			tt.want(&want)
			got, problems, err := cur.Apply([]byte(tt.raw), base)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Apply = %+v, want %+v", got, want)
			}
			var keys []string
			for _, p := range problems {
				keys = append(keys, p[:strings.IndexByte(p, ':')])
			}
			slices.Sort(keys)
			if strings.Join(keys, " ") != tt.problems {
				t.Errorf("problems = %q, want keys %q", problems, tt.problems)
			}
		})
	}
	if _, _, err := base.Apply([]byte(`[1]`), base); err == nil {
		t.Error("settings array: no error")
	}
}
