// Package settings holds the language server's user settings and reads them
// from the places an editor puts them: initializationOptions,
// workspace/didChangeConfiguration and workspace/configuration.
package settings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Section is the configuration section the server asks the client for, and
// the key editors nest diffill's settings under.
const Section = "diffill"

// Settings are what a user can change. Zero values of the decoding knobs
// mean "the engine's default".
type Settings struct {
	Model         string  `json:"model"`         // checkpoint directory; "" = built-in model
	Device        string  `json:"device"`        // "auto" (the GPU when present, else the CPU), "cpu" or "cuda"
	Steps         int     `json:"steps"`         // denoising steps; 0 = engine default
	Sampler       string  `json:"sampler"`       // confidence | margin | entropy | random
	Temperature   float64 `json:"temperature"`   // 0 = greedy
	MaxTokens     int     `json:"maxTokens"`     // masks per span; 0 = chosen per mode
	ContextTokens int     `json:"contextTokens"` // token budget around the spans; 0 = engine default
	HoleMarker    string  `json:"holeMarker"`    // what "Fill holes" fills; default "???"
	// Debounce is the longest the server waits for typing to pause before
	// it computes a completion, in milliseconds; it waits less when the
	// user types slowly. 0 turns debouncing off.
	Debounce int `json:"debounce"`
	// GhostThreshold is the confidence (0..1, gocheck's calibrated
	// estimate that the answer is right) below which ghost text shows
	// nothing; with it set (> 0), answers that fail a Go check (parse,
	// names, types) are never ghost text as the user types. 0: off.
	// The completion list still shows its best, marked low confidence.
	GhostThreshold float64 `json:"ghostThreshold"`
}

// Default returns the settings used before the client says otherwise.
func Default() Settings {
	return Settings{HoleMarker: "???", Debounce: 75, GhostThreshold: DefaultGhostThreshold}
}

// DefaultGhostThreshold is GhostThreshold's default: 0, gating off. On the
// dev set 0.03 doubled the precision of what is shown, but in an editor it
// hid every answer in a line still being written (`if len(` with an
// auto-closed ")": no answer parses in place before the block is typed;
// the Neovim TestAutoPairs saw no ghost text in 2 minutes), so it is a
// setting to opt into until the parse check accepts unfinished statements.
const DefaultGhostThreshold = 0

// DebounceDuration returns Debounce as a duration.
func (s Settings) DebounceDuration() time.Duration {
	return time.Duration(s.Debounce) * time.Millisecond
}

// Samplers lists the sampler names the engine knows.
var Samplers = []string{"confidence", "margin", "entropy", "random"}

// Apply returns s updated with the settings in raw, which may be the
// settings object itself or an object holding it under "diffill" (editors
// send both shapes). A key that is absent keeps its value; null restores
// the default of base. Values out of range are left out and reported in
// problems, so one typo does not lose the other settings.
func (s Settings) Apply(raw json.RawMessage, base Settings) (_ Settings, problems []string, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return s, nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return s, nil, fmt.Errorf("settings must be a JSON object: %w", err)
	}
	if inner, ok := obj[Section]; ok {
		if err := json.Unmarshal(inner, &obj); err != nil {
			return s, nil, fmt.Errorf("settings %q must be a JSON object: %w", Section, err)
		}
	}
	for key, v := range obj {
		isNull := string(bytes.TrimSpace(v)) == "null"
		var perr error
		switch key {
		case "model":
			perr = setString(&s.Model, base.Model, v, isNull, nil)
		case "device":
			perr = setString(&s.Device, base.Device, v, isNull, nil)
		case "steps":
			perr = setInt(&s.Steps, base.Steps, v, isNull, 0, 4096)
		case "sampler":
			perr = setString(&s.Sampler, base.Sampler, v, isNull, func(x string) error {
				for _, name := range Samplers {
					if x == name || x == "" {
						return nil
					}
				}
				return fmt.Errorf("unknown sampler %q (want one of %s)", x, strings.Join(Samplers, ", "))
			})
		case "temperature":
			perr = setFloat(&s.Temperature, base.Temperature, v, isNull, 0, 10)
		case "maxTokens":
			perr = setInt(&s.MaxTokens, base.MaxTokens, v, isNull, 0, 4096)
		case "contextTokens":
			perr = setInt(&s.ContextTokens, base.ContextTokens, v, isNull, 0, 1<<16)
		case "holeMarker":
			perr = setString(&s.HoleMarker, base.HoleMarker, v, isNull, func(x string) error {
				switch {
				case x == "":
					return fmt.Errorf("holeMarker must not be empty")
				case len(x) > 64 || strings.ContainsAny(x, "\r\n"):
					return fmt.Errorf("holeMarker must be one line of at most 64 bytes")
				}
				return nil
			})
		case "debounce":
			perr = setInt(&s.Debounce, base.Debounce, v, isNull, 0, 5000)
		case "ghostThreshold":
			perr = setFloat(&s.GhostThreshold, base.GhostThreshold, v, isNull, 0, 1)
		default:
			// Settings of other tools, or of a newer diffill: ignore.
			continue
		}
		if perr != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", key, perr))
		}
	}
	return s, problems, nil
}

func setString(dst *string, def string, v json.RawMessage, isNull bool, check func(string) error) error {
	if isNull {
		*dst = def
		return nil
	}
	var x string
	if err := json.Unmarshal(v, &x); err != nil {
		return fmt.Errorf("want a string, got %s", v)
	}
	if check != nil {
		if err := check(x); err != nil {
			return err
		}
	}
	*dst = x
	return nil
}

func setInt(dst *int, def int, v json.RawMessage, isNull bool, lo, hi int) error {
	if isNull {
		*dst = def
		return nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || f != math.Trunc(f) {
		return fmt.Errorf("want an integer, got %s", v)
	}
	if f < float64(lo) || f > float64(hi) {
		return fmt.Errorf("%v is outside [%d, %d]", f, lo, hi)
	}
	*dst = int(f)
	return nil
}

func setFloat(dst *float64, def float64, v json.RawMessage, isNull bool, lo, hi float64) error {
	if isNull {
		*dst = def
		return nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return fmt.Errorf("want a number, got %s", v)
	}
	if f < lo || f > hi || math.IsNaN(f) {
		return fmt.Errorf("%v is outside [%v, %v]", f, lo, hi)
	}
	*dst = f
	return nil
}
