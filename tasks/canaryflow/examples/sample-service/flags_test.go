package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMurmur3KnownVectors(t *testing.T) {
	for in, want := range map[string]uint32{
		"":      0,
		"hello": 0x248bfa47,
		"The quick brown fox jumps over the lazy dog": 0x2e4ff723,
		"new-checkoutuser-0":                          3681238591,
	} {
		if got := murmur3Sum32([]byte(in)); got != want {
			t.Errorf("murmur3(%q) = %d, want %d", in, got, want)
		}
	}
}

// The same users and buckets are checked from Python (tests/test_sample_service.py).
var fractionalCases = map[string]int{
	"user-0": 28, "user-1": 90, "user-4": 2, "user-5": 24, "user-22": 25,
}

const fractionalDoc = `{"flags": {"new-checkout": {
	"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
	"targeting": {"fractional": [
		{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["on", 25], ["off", 75]]}}}}`

func TestFractionalBucketsFixedUsers(t *testing.T) {
	doc := mustParse(t, fractionalDoc)
	for user, bucket := range fractionalCases {
		if got := int(fractionalRatio("new-checkout"+user) * 100); got != bucket {
			t.Errorf("bucket of %s = %d, want %d", user, got, bucket)
		}
		want := "off"
		if bucket < 25 {
			want = "on"
		}
		if got := doc.variant("new-checkout", user, time.Now()); got != want {
			t.Errorf("variant for %s (bucket %d) = %q, want %q", user, bucket, got, want)
		}
	}
}

func TestFractionalWithoutBucketingValueUsesFlagKeyAndTargetingKey(t *testing.T) {
	doc := mustParse(t, `{"flags": {"new-checkout": {"state": "ENABLED",
		"variants": {"on": true, "off": false}, "defaultVariant": "off",
		"targeting": {"fractional": [["on", 25], ["off", 75]]}}}}`)
	if got := doc.variant("new-checkout", "user-4", time.Now()); got != "on" {
		t.Fatalf("user-4 (bucket 2) got %q, want on", got)
	}
	if got := doc.variant("new-checkout", "", time.Now()); got != "off" {
		t.Fatalf("no targeting key serves the default variant, got %q", got)
	}
}

func TestSegmentRules(t *testing.T) {
	doc := mustParse(t, `{"flags": {"new-checkout": {"state": "ENABLED",
		"variants": {"on": true, "off": false}, "defaultVariant": "off",
		"targeting": {"if": [
			{"or": [
				{"in": [{"var": "targetingKey"}, ["alice", "bob"]]},
				{"and": [{">=": [{"var": "userId"}, "100"]}, {"<": [{"var": "userId"}, 200]}]},
				{"==": [{"var": "userId"}, "qa"]}
			]}, "on", "off"]}}}}`)
	for user, want := range map[string]string{
		"alice": "on", "bob": "on", "carol": "off",
		"100": "on", "150": "on", "99": "off", "200": "off", "1000": "off", // numeric, not lexical
		"qa": "on", "": "off",
	} {
		if got := doc.variant("new-checkout", user, time.Now()); got != want {
			t.Errorf("user %q: got %q, want %q", user, got, want)
		}
	}
}

func TestDisabledFlagServesTheDefaultVariantAndUnknownFlagsNone(t *testing.T) {
	doc := mustParse(t, `{"flags": {"new-checkout": {"state": "DISABLED",
		"variants": {"on": true, "off": false}, "defaultVariant": "off",
		"targeting": {"if": [true, "on", "off"]}}}}`)
	if got := doc.variant("new-checkout", "alice", time.Now()); got != "off" {
		t.Fatalf("disabled flag served %q", got)
	}
	if got := doc.variant("other-flag", "alice", time.Now()); got != "" {
		t.Fatalf("unknown flag served %q", got)
	}
}

func TestBadDocumentsNameTheProblem(t *testing.T) {
	for doc, want := range map[string]string{
		`{`:             "not a flagd document",
		`{"flagz": {}}`: "flags: missing",
		`{"flags": {"f": {"state": "ON", "variants": {"a": 1}, "defaultVariant": "a"}}}`:                                    "flags.f.state",
		`{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "b"}}}`:                               "flags.f.defaultVariant",
		`{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"sem_ver": []}}}}`: `operator "sem_ver"`,
	} {
		if _, err := parseFlagDocument([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse(%s) = %v, want an error naming %q", doc, err, want)
		}
	}
}

func TestFlagSourceKeepsThePreviousDocumentWhenANewOneIsBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	always := func(v string) string {
		return `{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false},
			"defaultVariant": "off", "targeting": {"if": [true, "` + v + `", "off"]}}}}`
	}
	write(always("on"))
	src, err := newFlagSource(path, "new-checkout", newLogger(os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	write(`{"flags": `)
	if err := src.reload(); err == nil {
		t.Fatal("a truncated document was accepted")
	}
	if got := src.variant("u"); got != "on" {
		t.Fatalf("after a bad document the variant is %q, want the previous on", got)
	}
	write(always("off"))
	if err := src.reload(); err != nil {
		t.Fatal(err)
	}
	if got := src.variant("u"); got != "off" {
		t.Fatalf("after a good document the variant is %q, want off", got)
	}
}

func mustParse(t *testing.T, s string) *flagDocument {
	t.Helper()
	doc, err := parseFlagDocument([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestFlagSourceReportsTheDigestOfTheDocumentInForce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	good := `{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}`
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := newFlagSource(path, "new-checkout", newLogger(os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of the file's bytes, as canaryflow's document_digest computes it.
	if got, want := src.appliedDigest(), documentDigest([]byte(good)); got != want || len(got) != 16 {
		t.Fatalf("digest %q, want %q (16 hex digits)", got, want)
	}
	var b strings.Builder
	src.documentInfo().write(&b)
	want := `canaryflow_flag_document_info{digest="` + documentDigest([]byte(good)) + `",flag="new-checkout"} 1`
	if !strings.Contains(b.String(), want) {
		t.Fatalf("exposition %q lacks %q", b.String(), want)
	}
	if err := os.WriteFile(path, []byte(`{"flags": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if src.reload() == nil || src.appliedDigest() != documentDigest([]byte(good)) {
		t.Fatal("a bad document changed the digest reported")
	}
	var none *flagSource
	if none.appliedDigest() != "" {
		t.Fatal("no flag file must report no digest")
	}
}
