package chaos

import (
	"fmt"
	"html"
	"math"
	"os"
	"sort"
	"strings"
)

var kindColors = map[string]string{
	KindProduce: "#1f77b4", KindProduceBatch: "#ff7f0e", KindProduceAsync: "#2ca02c", KindProduceIdem: "#17becf", KindProduceStream: "#d62728", KindProduceNode: "#bcbd22",
	KindReadLin: "#9467bd", KindReadNode: "#8c564b", KindReadFollower: "#e377c2", KindReadStream: "#17becf", KindBoundsNode: "#7f7f7f",
}

var kindOrder = []string{KindProduce, KindProduceBatch, KindProduceAsync, KindProduceIdem, KindProduceStream, KindProduceNode, KindReadLin, KindReadNode, KindReadFollower, KindReadStream, KindBoundsNode}

// WriteReport writes a self-contained HTML page: throughput and latency per op kind over
// time with the nemesis windows shaded, and every checker's verdict.
func WriteReport(path string, res Result, ops []*Op, nem []NemesisEvent) error {
	var b strings.Builder
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>commitlog chaos report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.legend{font-size:90%;line-height:1.8}.swatch{display:inline-block;width:1em;height:0.8em;border:1px solid #bbb;vertical-align:middle}.ok{color:#2a2}.bad{color:#c22;font-weight:bold}.inc{color:#a80}svg{background:#fff;border:1px solid #ddd}code{font-size:90%}</style></head><body>`)
	verdict := `<span class="ok">no anomaly</span>`
	if res.Failed {
		verdict = `<span class="bad">ANOMALIES FOUND</span>`
	}
	fmt.Fprintf(&b, "<h1>commitlog chaos: seed %d — %s</h1>\n", res.Seed, verdict)
	fmt.Fprintf(&b, "<p>%d operations; elapsed %s.<br>Schedule: <code>%s</code></p>\n", res.Ops, html.EscapeString(res.Elapsed), html.EscapeString(res.Schedule))
	b.WriteString("<h2>Checkers</h2><table><tr><th>checker</th><th>verdict</th><th>anomalies</th><th>first anomaly</th><th>note</th></tr>\n")
	for _, v := range res.Verdicts {
		cls, txt := "ok", "ok"
		switch {
		case v.Inconclusive:
			cls, txt = "inc", "inconclusive"
		case !v.OK:
			cls, txt = "bad", "FAIL"
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td class=%q>%s</td><td>%d</td><td><code>%s</code></td><td>%s</td></tr>\n",
			v.Name, cls, txt, v.Anomalies, html.EscapeString(v.First), html.EscapeString(v.Note))
	}
	b.WriteString("</table>\n")

	end := int64(1)
	for _, op := range ops {
		end = max(end, op.Complete, op.Invoke)
	}
	for _, n := range nem {
		end = max(end, n.End)
	}
	secs := int(end/1e9) + 1
	// Throughput: completed ok ops per second per kind.
	tp := map[string][]float64{}
	maxTP := 1.0
	for _, op := range ops {
		if op.Status != StatusOK {
			continue
		}
		s := tp[op.Kind]
		if s == nil {
			s = make([]float64, secs)
			tp[op.Kind] = s
		}
		i := int(op.Complete / 1e9)
		if i < secs {
			s[i]++
			maxTP = max(maxTP, s[i])
		}
	}
	const W, H, L, R, T, B = 1100.0, 280.0, 64.0, 24.0, 22.0, 34.0 // size; left, right, top, bottom margins
	x := func(ns int64) float64 { return L + (W-L-R)*float64(ns)/float64(end) }
	legend := func() {
		b.WriteString(`<p class="legend">`)
		for _, k := range kindOrder {
			fmt.Fprintf(&b, `<span style="color:%s">■</span> %s &nbsp; `, kindColors[k], k)
		}
		b.WriteString("<br>nemesis windows: ")
		for _, f := range faultFamilies {
			fmt.Fprintf(&b, `<span class="swatch" style="background:%s"></span> %s &nbsp; `, f.color, f.name)
		}
		b.WriteString("</p>\n")
	}
	// frame draws the shaded nemesis windows (numbered as in the list below), the time axis and
	// the plot's frame.
	frame := func(ylabel string) string {
		var s strings.Builder
		for i, n := range nem {
			// A window of several faults is striped: one horizontal band per fault.
			faults := strings.Split(n.Name, "+")
			band := (H - T - B) / float64(len(faults))
			for j, f := range faults {
				fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.55"><title>#%d %s: %s</title></rect>`,
					x(n.Start), T+float64(j)*band, max(x(n.End)-x(n.Start), 1), band, nemesisColor(f), i+1, html.EscapeString(n.Name), html.EscapeString(n.Detail))
			}
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" font-size="10" fill="#555">#%d %s</text>`, x(n.Start)+2, T-4, i+1, html.EscapeString(n.Name))
		}
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`, L, T, W-L-R, H-T-B)
		step := 1
		for secs/step > 20 {
			step *= 2
		}
		for t := 0; t <= secs; t += step {
			fmt.Fprintf(&s, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999"/><text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%d</text>`,
				x(int64(t)*1e9), x(int64(t)*1e9), H-B, H-B+4, x(int64(t)*1e9), H-B+15, t)
		}
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">seconds since the run began</text>`, L+(W-L-R)/2, H-4)
		fmt.Fprintf(&s, `<text transform="translate(12 %.1f) rotate(-90)" font-size="11" text-anchor="middle">%s</text>`, T+(H-T-B)/2, ylabel)
		return s.String()
	}
	b.WriteString("<h2>Throughput and latency</h2>\n")
	legend()
	b.WriteString("<h3>Acknowledged operations per second, per kind</h3>\n")
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">%s`, W, H, frame("ops/s"))
	top := niceCeil(maxTP)
	y := func(v float64) float64 { return H - B - (H-B-T)*v/top }
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/><text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%g</text>`, L, W-R, y(v), y(v), L-4, y(v)+3, v)
	}
	for _, k := range kindOrder {
		s := tp[k]
		if s == nil {
			continue
		}
		var pts []string
		for i, v := range s {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(int64(i)*1e9+5e8), y(v)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>%s</title></polyline>`, kindColors[k], strings.Join(pts, " "), k)
	}
	b.WriteString("</svg>\n")

	// Latency: one dot per op (log scale), colour by kind; failed ops as crosses.
	b.WriteString("<h3>Latency of each operation, by the time it was invoked (log scale; • ok, × failed, ○ unknown outcome)</h3>\n")
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">%s`, W, H, frame("latency"))
	lo, hi := math.Log10(1e5), math.Log10(2e10) // 0.1 ms .. 20 s
	ly := func(ns int64) float64 {
		v := math.Log10(math.Max(float64(ns), 1e5))
		return H - B - (H-B-T)*math.Min((v-lo)/(hi-lo), 1)
	}
	for _, tick := range []struct {
		ns    int64
		label string
	}{{1e5, "0.1 ms"}, {1e6, "1 ms"}, {1e7, "10 ms"}, {1e8, "100 ms"}, {1e9, "1 s"}, {1e10, "10 s"}} {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/><text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%s</text>`,
			L, W-R, ly(tick.ns), ly(tick.ns), L-4, ly(tick.ns)+3, tick.label)
	}
	sorted := append([]*Op(nil), ops...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Invoke < sorted[j].Invoke })
	for _, op := range sorted {
		if op.Complete == 0 {
			continue
		}
		cx, cy, col := x(op.Invoke), ly(op.Complete-op.Invoke), kindColors[op.Kind]
		switch op.Status {
		case StatusOK:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.3" fill="%s"/>`, cx, cy, col)
		case StatusUnknown:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="none" stroke="%s"/>`, cx, cy, col)
		default:
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl4 4m0 -4l-4 4" stroke="%s"/>`, cx-2, cy-2, col)
		}
	}
	b.WriteString("</svg>\n<h2>Op counts</h2><table><tr><th>kind</th><th>ok</th><th>fail</th><th>unknown</th></tr>\n")
	counts := map[string]map[string]int{}
	for _, op := range ops {
		if counts[op.Kind] == nil {
			counts[op.Kind] = map[string]int{}
		}
		counts[op.Kind][op.Status]++
	}
	for _, k := range kindOrder {
		c := counts[k]
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>\n", k, c[StatusOK], c[StatusFail], c[StatusUnknown]+c[""])
	}
	b.WriteString("</table>\n<h2>Nemesis windows</h2><ul>\n")
	for i, n := range nem {
		b.WriteString("<li>")
		for _, f := range strings.Split(n.Name, "+") {
			fmt.Fprintf(&b, `<span class="swatch" style="background:%s"></span>`, nemesisColor(f))
		}
		fmt.Fprintf(&b, " #%d %s – %s: %s</li>\n", i+1, fmtNS(n.Start), fmtNS(n.End), html.EscapeString(n.Detail))
	}
	b.WriteString("</ul><p>History: history.jsonl next to this file (one JSON line per invoke and per completion).</p></body></html>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// faultFamilies are the shading colours of nemesis windows, by the family of each fault.
var faultFamilies = []struct{ name, color string }{
	{"partition", "#f4c7c3"},
	{"lossy or slow link", "#fce8b2"},
	{"kill or pause", "#d9c6ef"},
	{"leadership or membership change", "#c6def2"},
}

func nemesisColor(fault string) string {
	first := fault
	switch {
	case strings.HasPrefix(first, "partition"):
		return faultFamilies[0].color
	case first == "lossy" || first == "slow":
		return faultFamilies[1].color
	case strings.HasPrefix(first, "kill") || first == "pause-leader":
		return faultFamilies[2].color
	}
	return faultFamilies[3].color
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (a round axis maximum).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
