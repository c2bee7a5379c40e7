package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Feature flags in OpenFeature flagd's JSON format, evaluated here per request so that a
// release can watch a feature behind a flag: the served variant labels the HTTP metrics.

// flagDocument is a flagd flag definition file.
type flagDocument struct {
	Flags map[string]flagDefinition `json:"flags"`
}

type flagDefinition struct {
	State          string         `json:"state"`
	Variants       map[string]any `json:"variants"`
	DefaultVariant string         `json:"defaultVariant"`
	Targeting      map[string]any `json:"targeting"`
}

// parseFlagDocument decodes and checks a flagd document; an error names the flag at fault.
func parseFlagDocument(data []byte) (*flagDocument, error) {
	var doc flagDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a flagd document: %v", err)
	}
	if doc.Flags == nil {
		return nil, errors.New(`flags: missing; a flagd document is {"flags": {"<key>": {...}}}`)
	}
	keys := make([]string, 0, len(doc.Flags))
	for key := range doc.Flags {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if err := doc.Flags[key].check(); err != nil {
			return nil, fmt.Errorf("flags.%s.%v", key, err)
		}
	}
	return &doc, nil
}

func (f flagDefinition) check() error {
	if f.State != "ENABLED" && f.State != "DISABLED" {
		return fmt.Errorf("state: %q is not ENABLED or DISABLED", f.State)
	}
	if len(f.Variants) == 0 {
		return errors.New(`variants: empty; name at least one, e.g. {"on": true, "off": false}`)
	}
	if _, ok := f.Variants[f.DefaultVariant]; !ok {
		return fmt.Errorf("defaultVariant: %q is not one of the variants", f.DefaultVariant)
	}
	if len(f.Targeting) > 0 {
		if err := checkRule(f.Targeting); err != nil {
			return fmt.Errorf("targeting: %v", err)
		}
	}
	return nil
}

// variant is the variant name served for `flagKey` to the user `targetingKey` ("" when the
// flag does not exist). A disabled flag, a flag without targeting, a rule that fails to
// evaluate, and a rule naming no known variant all serve the default variant, as flagd does.
func (d *flagDocument) variant(flagKey, targetingKey string, now time.Time) string {
	flag, ok := d.Flags[flagKey]
	if !ok {
		return ""
	}
	if flag.State == "DISABLED" || len(flag.Targeting) == 0 {
		return flag.DefaultVariant
	}
	result, err := evalRule(flag.Targeting, evaluationContext(flagKey, targetingKey, now))
	name, isString := result.(string)
	if err != nil || !isString {
		return flag.DefaultVariant
	}
	if _, known := flag.Variants[name]; !known {
		return flag.DefaultVariant
	}
	return name
}

// evaluationContext is flagd's: the targeting key (also as userId, which segment rules use)
// and the $flagd properties. An empty targeting key is left out, so rules see it as missing.
func evaluationContext(flagKey, targetingKey string, now time.Time) map[string]any {
	ctx := map[string]any{
		"$flagd": map[string]any{"flagKey": flagKey, "timestamp": float64(now.Unix())},
	}
	if targetingKey != "" {
		ctx["targetingKey"] = targetingKey
		ctx["userId"] = targetingKey
	}
	return ctx
}
