package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Metrics are written by hand in the Prometheus text format 0.0.4, following client_golang's
// conventions exactly (families sorted by name, labels sorted by name, series sorted by label
// values, "le" and "quantile" last, floats as strconv 'g' -1), so that canaryflow's analysis
// queries read this service as they would read any instrumented Go service.

// defaultBuckets are the histogram buckets of every latency histogram here.
var defaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// collector is one metric family: it writes its HELP, TYPE and samples.
type collector interface {
	name() string
	write(w io.Writer)
}

// registry holds the families and writes them sorted by name.
type registry struct {
	mu         sync.Mutex
	collectors []collector
}

func (r *registry) register(c collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, c)
}

func (r *registry) writeTo(w io.Writer) {
	r.mu.Lock()
	cs := append([]collector(nil), r.collectors...)
	r.mu.Unlock()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name() < cs[j].name() })
	for _, c := range cs {
		c.write(w)
	}
}

// desc is what a family's header says, and which labels its series carry.
type desc struct {
	fqName string
	help   string
	typ    string
	labels []string // in the order callers pass values
}

func (d desc) name() string { return d.fqName }

func (d desc) writeHeader(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", d.fqName, escapeHelp(d.help), d.fqName, d.typ)
}

// labelPairs renders {a="x",b="y"} with label names sorted, plus trailing extra pairs.
func (d desc) labelPairs(values []string, extra ...string) string {
	type pair struct{ k, v string }
	pairs := make([]pair, 0, len(values))
	for i, v := range values {
		pairs = append(pairs, pair{d.labels[i], v})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k })
	for i := 0; i+1 < len(extra); i += 2 {
		pairs = append(pairs, pair{extra[i], extra[i+1]})
	}
	if len(pairs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.k)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(p.v))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func (d desc) checkValues(values []string) {
	if len(values) != len(d.labels) {
		panic(fmt.Sprintf("%s: %d label values for labels %v", d.fqName, len(values), d.labels))
	}
}

// seriesKey joins label values; \xff cannot occur in UTF-8 text.
func seriesKey(values []string) string { return strings.Join(values, "\xff") }

// sortedKeys orders series as client_golang does: by their label values in label-name order.
func sortedKeys[V any](d desc, m map[string]V) []string {
	order := make([]int, len(d.labels))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return d.labels[order[i]] < d.labels[order[j]] })
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := strings.Split(keys[i], "\xff"), strings.Split(keys[j], "\xff")
		for _, idx := range order {
			if a[idx] != b[idx] {
				return a[idx] < b[idx]
			}
		}
		return false
	})
	return keys
}

// counterVec is a counter family with labels.
type counterVec struct {
	desc
	mu     sync.Mutex
	values map[string]float64
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{desc: desc{name, help, "counter", labels}, values: map[string]float64{}}
}

func (c *counterVec) add(v float64, labelValues ...string) {
	c.checkValues(labelValues)
	c.mu.Lock()
	c.values[seriesKey(labelValues)] += v
	c.mu.Unlock()
}

func (c *counterVec) inc(labelValues ...string) { c.add(1, labelValues...) }

func (c *counterVec) write(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.values) == 0 && len(c.labels) > 0 {
		return // client_golang omits a vector family until its first series exists
	}
	c.writeHeader(w)
	for _, k := range sortedKeys(c.desc, c.values) {
		fmt.Fprintf(w, "%s%s %s\n", c.fqName, c.labelPairs(splitKey(k, len(c.labels))), formatFloat(c.values[k]))
	}
}

// histogramVec is a histogram family with labels; buckets are cumulative on output.
type histogramVec struct {
	desc
	buckets []float64
	mu      sync.Mutex
	series  map[string]*histogram
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *histogramVec {
	return &histogramVec{
		desc:    desc{name, help, "histogram", labels},
		buckets: buckets,
		series:  map[string]*histogram{},
	}
}

func (h *histogramVec) observe(v float64, labelValues ...string) {
	h.checkValues(labelValues)
	key := seriesKey(labelValues)
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.series[key]
	if !ok {
		s = &histogram{counts: make([]uint64, len(h.buckets)+1)}
		h.series[key] = s
	}
	i := sort.SearchFloat64s(h.buckets, v) // first bucket with upper bound >= v
	s.counts[i]++
	s.sum += v
	s.count++
}

func (h *histogramVec) write(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.series) == 0 && len(h.labels) > 0 {
		return
	}
	h.writeHeader(w)
	for _, k := range sortedKeys(h.desc, h.series) {
		s, values := h.series[k], splitKey(k, len(h.labels))
		var cumulative uint64
		for i, upper := range h.buckets {
			cumulative += s.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.fqName, h.labelPairs(values, "le", formatFloat(upper)), cumulative)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.fqName, h.labelPairs(values, "le", "+Inf"), s.count)
		fmt.Fprintf(w, "%s_sum%s %s\n", h.fqName, h.labelPairs(values), formatFloat(s.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", h.fqName, h.labelPairs(values), s.count)
	}
}

// gaugeFunc is an unlabelled gauge or counter read at scrape time.
type gaugeFunc struct {
	desc
	read func() float64
}

func newGaugeFunc(name, help, typ string, read func() float64) *gaugeFunc {
	return &gaugeFunc{desc: desc{name, help, typ, nil}, read: read}
}

func (g *gaugeFunc) write(w io.Writer) {
	g.writeHeader(w)
	fmt.Fprintf(w, "%s %s\n", g.fqName, formatFloat(g.read()))
}

// constGauge is one series with fixed labels and value, like a build_info metric.
type constGauge struct {
	desc
	values []string
	value  float64
}

func (g *constGauge) write(w io.Writer) {
	g.writeHeader(w)
	fmt.Fprintf(w, "%s%s %s\n", g.fqName, g.labelPairs(g.values), formatFloat(g.value))
}

// infoFunc is an info-style gauge (value 1) whose label values are read at scrape time; no
// series at all while read returns nil.
type infoFunc struct {
	desc
	read func() []string
}

func (g *infoFunc) write(w io.Writer) {
	values := g.read()
	if values == nil {
		return
	}
	g.checkValues(values)
	g.writeHeader(w)
	fmt.Fprintf(w, "%s%s 1\n", g.fqName, g.labelPairs(values))
}

// summarySnapshot is a summary's state at scrape time.
type summarySnapshot struct {
	quantiles map[float64]float64
	sum       float64
	count     uint64
}

// summaryFunc is an unlabelled summary read at scrape time.
type summaryFunc struct {
	desc
	read func() summarySnapshot
}

func (s *summaryFunc) write(w io.Writer) {
	snap := s.read()
	s.writeHeader(w)
	qs := make([]float64, 0, len(snap.quantiles))
	for q := range snap.quantiles {
		qs = append(qs, q)
	}
	sort.Float64s(qs)
	for _, q := range qs {
		fmt.Fprintf(w, "%s{quantile=%q} %s\n", s.fqName, formatFloat(q), formatFloat(snap.quantiles[q]))
	}
	fmt.Fprintf(w, "%s_sum %s\n%s_count %d\n", s.fqName, formatFloat(snap.sum), s.fqName, snap.count)
}

func splitKey(key string, n int) []string {
	if n == 0 {
		return nil
	}
	return strings.Split(key, "\xff")
}

// formatFloat writes a sample value as client_golang's text encoder does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string       { return helpEscaper.Replace(s) }
func escapeLabelValue(s string) string { return valueEscaper.Replace(s) }
