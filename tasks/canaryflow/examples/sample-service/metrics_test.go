package main

import (
	"strings"
	"testing"
)

func render(c collector) string {
	var b strings.Builder
	c.write(&b)
	return b.String()
}

func TestHistogramExpositionIsCumulativeWithSortedLabelsAndLeLast(t *testing.T) {
	h := newHistogramVec("req_seconds", "Request time.", []float64{0.1, 1}, "variant", "path")
	h.observe(0.05, "on", "/")
	h.observe(0.1, "on", "/") // an observation equal to a bound falls into that bucket
	h.observe(3, "on", "/")
	want := `# HELP req_seconds Request time.
# TYPE req_seconds histogram
req_seconds_bucket{path="/",variant="on",le="0.1"} 2
req_seconds_bucket{path="/",variant="on",le="1"} 2
req_seconds_bucket{path="/",variant="on",le="+Inf"} 3
req_seconds_sum{path="/",variant="on"} 3.15
req_seconds_count{path="/",variant="on"} 3
`
	if got := render(h); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestCounterSeriesAreSortedByLabelValuesInLabelNameOrder(t *testing.T) {
	c := newCounterVec("hits_total", "Hits.", "method", "code")
	c.inc("POST", "200")
	c.add(2, "GET", "500")
	c.inc("GET", "200")
	want := `# HELP hits_total Hits.
# TYPE hits_total counter
hits_total{code="200",method="GET"} 1
hits_total{code="200",method="POST"} 1
hits_total{code="500",method="GET"} 2
`
	if got := render(c); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestEmptyVectorIsOmittedLikeClientGolang(t *testing.T) {
	if got := render(newCounterVec("x_total", "X.", "code")); got != "" {
		t.Fatalf("got %q, want nothing", got)
	}
}

func TestSummaryExposition(t *testing.T) {
	s := &summaryFunc{
		desc: desc{fqName: "gc_seconds", help: "GC.", typ: "summary"},
		read: func() summarySnapshot {
			return summarySnapshot{
				quantiles: map[float64]float64{1: 0.004, 0: 0.0001, 0.5: 0.001},
				sum:       0.0051,
				count:     3,
			}
		},
	}
	want := `# HELP gc_seconds GC.
# TYPE gc_seconds summary
gc_seconds{quantile="0"} 0.0001
gc_seconds{quantile="0.5"} 0.001
gc_seconds{quantile="1"} 0.004
gc_seconds_sum 0.0051
gc_seconds_count 3
`
	if got := render(s); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestGCSummaryHasTheFiveQuantilesClientGolangReports(t *testing.T) {
	snap := gcPauseSummary()
	for _, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
		if _, ok := snap.quantiles[q]; !ok {
			t.Errorf("quantile %v missing", q)
		}
	}
}

func TestLabelValuesAndHelpAreEscaped(t *testing.T) {
	c := newCounterVec("e_total", "a\\b\nc", "v")
	c.inc("q\"\\\n")
	want := "# HELP e_total a\\\\b\\nc\n# TYPE e_total counter\ne_total{v=\"q\\\"\\\\\\n\"} 1\n"
	if got := render(c); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestFormatFloatMatchesClientGolang(t *testing.T) {
	for in, want := range map[float64]string{0.005: "0.005", 10: "10", 1e6: "1e+06", 2.5: "2.5"} {
		if got := formatFloat(in); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestCFSPeriodIsThrottledOnlyAboveTheQuota(t *testing.T) {
	cfs := newCFSAccounting(500, newTelemetry("test", flavourGo))
	if cfs.quota.Milliseconds() != 50 {
		t.Fatalf("quota of 500 millicores = %v per period, want 50ms", cfs.quota)
	}
	if cfs.throttledIn(cfs.quota) || !cfs.throttledIn(cfs.quota+1) {
		t.Fatal("a period is throttled exactly when its CPU time exceeds the quota")
	}
}

func TestEachFlavourExportsItsRequestSeries(t *testing.T) {
	cases := map[metricsFlavour][]string{
		flavourGo: {`http_requests_total{code="500",method="GET",path="/",variant="off"} 1`,
			`http_request_duration_seconds_count{path="/",variant="off"} 2`},
		flavourOTel: {`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="500",http_route="/",url_scheme="http"} 1`,
			`http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/",url_scheme="http",le="0.075"} 1`},
		flavourGRPC: {`grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Serve",grpc_service="sample.v1.Checkout",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="OK",grpc_method="Serve",grpc_service="sample.v1.Checkout",grpc_type="unary"} 1`,
			`grpc_server_handling_seconds_count{grpc_method="Serve",grpc_service="sample.v1.Checkout",grpc_type="unary"} 2`},
	}
	for flavour, want := range cases {
		tel := newTelemetry("test", flavour)
		failed := tel.requests.failureStatus()
		tel.requests.record("GET", "/", 200, "off", 0.06)
		tel.requests.record("GET", "/", failed, "off", 0.02)
		var out strings.Builder
		tel.registry.writeTo(&out)
		for _, line := range want {
			if !strings.Contains(out.String(), line+"\n") {
				t.Errorf("%s: missing %s in\n%s", flavour, line, out.String())
			}
		}
		if flavour != flavourGo && strings.Contains(out.String(), "http_requests_total") {
			t.Errorf("%s still exports http_requests_total", flavour)
		}
	}
}

func TestAnUnknownFlavourIsRefused(t *testing.T) {
	if _, err := parseConfig([]string{"-metrics", "statsd"}, func(string) string { return "" }); err == nil {
		t.Fatal("-metrics statsd accepted")
	}
}
