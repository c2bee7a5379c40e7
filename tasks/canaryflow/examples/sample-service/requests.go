package main

import (
	"fmt"
	"net/http"
	"strconv"
)

// metricsFlavour is how the user requests are exported (-metrics): as client_golang's
// promhttp middleware names them (go), as OpenTelemetry's Prometheus exporter writes the
// HTTP semantic conventions (otel), or as go-grpc-prometheus names a gRPC server's calls
// (grpc). canaryflow's catalogue has a flavour for each (analysis.metrics).
type metricsFlavour string

const (
	flavourGo   metricsFlavour = "go"
	flavourOTel metricsFlavour = "otel"
	flavourGRPC metricsFlavour = "grpc"
)

func parseFlavour(name string) (metricsFlavour, error) {
	switch f := metricsFlavour(name); f {
	case flavourGo, flavourOTel, flavourGRPC:
		return f, nil
	}
	return "", fmt.Errorf("-metrics: %q; use go, otel or grpc", name)
}

// otelBuckets are the explicit bucket boundaries the semantic conventions advise for
// http.server.request.duration (seconds).
var otelBuckets = []float64{.005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10}

// grpcBuckets are client_golang's DefBuckets, go-grpc-prometheus' default.
var grpcBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// grpcService is the service name the grpc flavour reports its calls under.
const grpcService = "sample.v1.Checkout"

// requestMetrics records one served user request in the chosen flavour.
type requestMetrics struct {
	flavour  metricsFlavour
	count    *counterVec   // go: http_requests_total; grpc: grpc_server_handled_total
	started  *counterVec   // grpc: grpc_server_started_total
	duration *histogramVec // the flavour's latency histogram
}

func newRequestMetrics(flavour metricsFlavour) requestMetrics {
	switch flavour {
	case flavourOTel:
		// http.server.request.duration, unit s: dots to underscores, unit appended.
		return requestMetrics{flavour: flavour, duration: newHistogramVec(
			"http_server_request_duration_seconds", "Duration of HTTP server requests.",
			otelBuckets, "http_request_method", "http_response_status_code", "http_route",
			"url_scheme")}
	case flavourGRPC:
		return requestMetrics{
			flavour: flavour,
			count: newCounterVec("grpc_server_handled_total",
				"Total number of RPCs completed on the server, regardless of success or failure.",
				"grpc_type", "grpc_service", "grpc_method", "grpc_code"),
			started: newCounterVec("grpc_server_started_total",
				"Total number of RPCs started on the server.",
				"grpc_type", "grpc_service", "grpc_method"),
			duration: newHistogramVec("grpc_server_handling_seconds",
				"Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
				grpcBuckets, "grpc_type", "grpc_service", "grpc_method"),
		}
	}
	return requestMetrics{
		flavour: flavourGo,
		count: newCounterVec("http_requests_total",
			"Total number of HTTP requests served, user traffic only.",
			"method", "path", "code", "variant"),
		duration: newHistogramVec("http_request_duration_seconds",
			"Time spent serving HTTP requests, user traffic only.",
			defaultBuckets, "path", "variant"),
	}
}

func (m requestMetrics) collectors() []collector {
	cs := []collector{m.duration}
	for _, c := range []*counterVec{m.count, m.started} {
		if c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}

// failureStatus is the HTTP status a failed request gets: 500, or under grpc 503, the HTTP
// equivalent of the Unavailable the call is counted with.
func (m requestMetrics) failureStatus() int {
	if m.flavour == flavourGRPC {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// grpcCode names an HTTP outcome as the gRPC status a server would have returned.
func grpcCode(status int) string {
	switch {
	case status < 400:
		return "OK"
	case status == http.StatusServiceUnavailable:
		return "Unavailable"
	case status >= 500:
		return "Internal"
	case status == http.StatusNotFound:
		return "NotFound"
	}
	return "InvalidArgument"
}

// record counts one user request: method, normalised path, status, flag variant, seconds.
func (m requestMetrics) record(method, path string, status int, variant string, seconds float64) {
	switch m.flavour {
	case flavourOTel:
		m.duration.observe(seconds, method, strconv.Itoa(status), path, "http")
	case flavourGRPC:
		rpc := "Serve"
		if path == "/checkout" {
			rpc = "Checkout"
		}
		m.started.inc("unary", grpcService, rpc)
		m.count.inc("unary", grpcService, rpc, grpcCode(status))
		m.duration.observe(seconds, "unary", grpcService, rpc)
	default:
		m.count.inc(method, path, strconv.Itoa(status), variant)
		m.duration.observe(seconds, path, variant)
	}
}
