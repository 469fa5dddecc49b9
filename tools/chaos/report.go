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
	KindProduce: "#1f77b4", KindProduceBatch: "#ff7f0e", KindProduceAsync: "#2ca02c", KindProduceStream: "#d62728",
	KindReadLin: "#9467bd", KindReadNode: "#8c564b", KindReadFollower: "#e377c2", KindReadStream: "#17becf", KindBoundsNode: "#7f7f7f",
}

var kindOrder = []string{KindProduce, KindProduceBatch, KindProduceAsync, KindProduceStream, KindReadLin, KindReadNode, KindReadFollower, KindReadStream, KindBoundsNode}

// WriteReport writes a self-contained HTML page: throughput and latency per op kind over
// time with the nemesis windows shaded, and every checker's verdict.
func WriteReport(path string, res Result, ops []*Op, nem []NemesisEvent) error {
	var b strings.Builder
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>commitlog chaos report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.ok{color:#2a2}.bad{color:#c22;font-weight:bold}.inc{color:#a80}svg{background:#fff;border:1px solid #ddd}code{font-size:90%}</style></head><body>`)
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
	const W, H, L, T = 1000.0, 260.0, 50.0, 10.0
	x := func(ns int64) float64 { return L + (W-L-10)*float64(ns)/float64(end) }
	shade := func() string {
		var s strings.Builder
		for _, n := range nem {
			fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f4c7c3" opacity="0.6"><title>%s</title></rect>`,
				x(n.Start), T, max(x(n.End)-x(n.Start), 1), H-T-30, html.EscapeString(n.Name+": "+n.Detail))
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" font-size="9" fill="#933">%s</text>`, x(n.Start)+2, T+10, html.EscapeString(n.Name))
		}
		for t := 0; t <= secs; t += max(1, secs/20) {
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" font-size="10">%ds</text>`, x(int64(t)*1e9), H-12, t)
		}
		return s.String()
	}
	b.WriteString("<h2>Throughput (acknowledged ops per second) per kind</h2>\n")
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">%s`, W, H, shade())
	y := func(v float64) float64 { return H - 30 - (H-30-T)*v/maxTP }
	fmt.Fprintf(&b, `<text x="2" y="%.1f" font-size="10">%.0f/s</text>`, y(maxTP)+10, maxTP)
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
	b.WriteString("<h2>Latency per operation (log scale; × failed, ○ unknown outcome)</h2>\n")
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">%s`, W, H, shade())
	lo, hi := math.Log10(1e5), math.Log10(2e10) // 0.1 ms .. 20 s
	ly := func(ns int64) float64 {
		v := math.Log10(math.Max(float64(ns), 1e5))
		return H - 30 - (H-30-T)*math.Min((v-lo)/(hi-lo), 1)
	}
	for _, ms := range []int64{1, 10, 100, 1000, 10000} {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="2" y="%.1f" font-size="10">%dms</text>`, L, W-10, ly(ms*1e6), ly(ms*1e6), ly(ms*1e6)+3, ms)
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
	b.WriteString("</svg>\n<p>")
	for _, k := range kindOrder {
		fmt.Fprintf(&b, `<span style="color:%s">■ %s</span> &nbsp; `, kindColors[k], k)
	}
	b.WriteString("</p>\n<h2>Op counts</h2><table><tr><th>kind</th><th>ok</th><th>fail</th><th>unknown</th></tr>\n")
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
	for _, n := range nem {
		fmt.Fprintf(&b, "<li>%s – %s: %s</li>\n", fmtNS(n.Start), fmtNS(n.End), html.EscapeString(n.Detail))
	}
	b.WriteString("</ul><p>History: history.jsonl next to this file (one JSON line per invoke and per completion).</p></body></html>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
