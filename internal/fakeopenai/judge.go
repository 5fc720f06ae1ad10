package fakeopenai

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// JudgeMarker opens the system prompt of an answer-similarity judge (see
// the similarity package, whose prompt starts with the same line). A chat
// completion (OpenAI or Azure) whose first system or developer message
// starts with it, or an Anthropic message whose top-level system prompt
// does, without tools offered, is answered with a verdict,
// {"score": 0..1, "reason": "..."}, instead of generated text, computed by
// judgeVerdict from the two answers the (last) user message delimits. It
// is a deterministic stand-in for a judge model: its scores only rank
// answers sensibly; thresholds must be calibrated on the real provider.
const JudgeMarker = "veil-similarity-judge/v1"

// judging reports whether a request whose system prompt is system asks
// for a judge's verdict.
func judging(system string) bool { return strings.HasPrefix(system, JudgeMarker) }

// judgeBegin and judgeEnd open the lines that delimit each answer, followed
// by the answer's letter and the request's marker: "BEGIN ANSWER A 3f9c...".
const (
	judgeBegin = "BEGIN ANSWER "
	judgeEnd   = "END ANSWER "
)

// judgeAnswers finds answer A (the reference) and answer B (the
// candidate) in a judge's user message: each between a line
// "BEGIN ANSWER X <marker>" and the line "END ANSWER X <marker>", with the
// marker of A's first line.
func judgeAnswers(user string) (a, b string, ok bool) {
	i := strings.Index(user, judgeBegin+"A ")
	if i < 0 || (i > 0 && user[i-1] != '\n') {
		return "", "", false
	}
	line, _, _ := strings.Cut(user[i+len(judgeBegin)+2:], "\n")
	marker := strings.TrimSpace(line)
	if marker == "" {
		return "", "", false
	}
	a, okA := delimited(user, "A", marker)
	b, okB := delimited(user, "B", marker)
	if !okA || !okB {
		return "", "", false
	}
	return a, b, true
}

// delimited returns the text between the BEGIN and END lines of answer
// letter with marker in s.
func delimited(s, letter, marker string) (string, bool) {
	begin := judgeBegin + letter + " " + marker + "\n"
	i := strings.Index(s, begin)
	if i < 0 || (i > 0 && s[i-1] != '\n') {
		return "", false
	}
	body := "\n" + s[i+len(begin):]
	j := strings.Index(body, "\n"+judgeEnd+letter+" "+marker)
	if j < 0 {
		return "", false
	}
	return body[1:max(j, 1)], true
}

// judgeVerdict is the fake judge's verdict on a judge's user message, as
// JSON. Its heuristic compares answer B with the reference A:
//
//   - Content: the concepts (see concepts) the two answers share, as
//     sqrt(recall) × precision, where recall is the share of A's concepts
//     that B has and precision the share of B's that A has. Leaving things
//     out costs less than saying other things.
//   - Events, when A is a timeline (three clock times or more): each time with the concepts nearest
//     it in its sentence or line is an event. An event of A is matched
//     when B has an event at the same time sharing a concept with it. The
//     event score is the matched events over the events of the answer
//     with more, times the share of pairs of matched events that B gives
//     in A's order.
//
// The score is 0.7 × events + 0.3 × content for a timeline, the content
// score otherwise, rounded to two decimals. Messages without the two
// delimited answers get a score of 0.
func judgeVerdict(user string) string {
	a, b, ok := judgeAnswers(user)
	score, reason := 0.0, "The two delimited answers were not found."
	if ok {
		score, reason = judgeScore(a, b)
	}
	out := []byte(`{"score": `)
	out = strconv.AppendFloat(out, score, 'f', 2, 64)
	out = append(out, `, "reason": `...)
	out = appendJSONString(out, reason)
	return string(append(out, '}'))
}

// judgeScore scores answer b against the reference a and says why.
func judgeScore(a, b string) (float64, string) {
	ca, cb := concepts(a), concepts(b)
	recall, precision := overlap(ca, cb)
	content := math.Sqrt(recall) * precision
	ea := timedEvents(ca)
	if len(ea) < minTimeline {
		return round2(content), "B covers " + pct(recall) + " of A's content; " + pct(precision) + " of B's content is in A."
	}
	eb := timedEvents(cb)
	var matched []timedEvent // A's events that B has, in A's order
	var positions []int      // their places in B
	for _, e := range ea {
		k := slices.IndexFunc(eb, func(f timedEvent) bool { return f.time == e.time })
		if k >= 0 && (len(e.concepts) == 0 || sharesAny(e.concepts, eb[k].concepts)) {
			matched = append(matched, e)
			positions = append(positions, k)
		}
	}
	order := 1.0
	if n := len(positions); n >= 2 {
		kept, pairs := 0, 0
		for i := range n {
			for j := i + 1; j < n; j++ {
				pairs++
				if positions[i] < positions[j] {
					kept++
				}
			}
		}
		order = float64(kept) / float64(pairs)
	}
	events := float64(len(matched)) / float64(max(len(ea), len(eb))) * order
	reason := strconv.Itoa(len(matched)) + " of A's " + strconv.Itoa(len(ea)) + " timed events are in B at the same time"
	if order < 1 {
		reason += ", some out of order"
	}
	if len(eb) > len(matched) {
		reason += "; B has " + strconv.Itoa(len(eb)-len(matched)) + " timed events A has not"
	}
	return round2(0.7*events + 0.3*content), reason + "."
}

// minTimeline is the number of clock times from which an answer is a
// timeline, judged by its events.
const minTimeline = 3

// timedEvent is a clock time of an answer and the concepts nearest it in
// its sentence or line.
type timedEvent struct {
	time     string
	concepts map[string]bool
}

// timedEvents groups concepts into events: every clock time, in order of
// first appearance, with the other concepts of its clause that are nearer
// to it than to any other time there (the later one on a tie).
func timedEvents(cs []concept) []timedEvent {
	var out []timedEvent
	index := map[string]int{}
	bySegment := map[int][]concept{}
	for _, c := range cs {
		if c.name[0] == '@' {
			if _, ok := index[c.name]; !ok {
				index[c.name] = len(out)
				out = append(out, timedEvent{time: c.name, concepts: map[string]bool{}})
			}
			bySegment[c.segment] = append(bySegment[c.segment], c)
		}
	}
	for _, c := range cs {
		times := bySegment[c.segment]
		if c.name[0] == '@' || len(times) == 0 {
			continue
		}
		best := times[0]
		for _, t := range times[1:] {
			// On a tie the time after wins: "dinner at 18:00".
			if d, bd := abs(t.pos-c.pos), abs(best.pos-c.pos); d < bd || d == bd && t.pos > c.pos {
				best = t
			}
		}
		out[index[best.name]].concepts[c.name] = true
	}
	return out
}

// overlap returns the share of a's distinct concepts that b has, and of
// b's that a has.
func overlap(a, b []concept) (recall, precision float64) {
	sa, sb := conceptSet(a), conceptSet(b)
	if len(sa) == 0 || len(sb) == 0 {
		return 0, 0
	}
	shared := 0
	for c := range sa {
		if sb[c] {
			shared++
		}
	}
	return float64(shared) / float64(len(sa)), float64(shared) / float64(len(sb))
}

func conceptSet(cs []concept) map[string]bool {
	m := make(map[string]bool, len(cs))
	for _, c := range cs {
		m[c.name] = true
	}
	return m
}

func sharesAny(a, b map[string]bool) bool {
	for c := range a {
		if b[c] {
			return true
		}
	}
	return false
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func round2(f float64) float64 { return math.Round(min(max(f, 0), 1)*100) / 100 }

func pct(f float64) string { return strconv.Itoa(int(math.Round(f*100))) + "%" }
