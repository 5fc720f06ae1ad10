package fakeopenai

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// This file gives the fake a crude sense of meaning, so that answer
// similarity can be tested against it: embeddings built from the content
// words of a text, and a judge that scores two answers. Both are
// deterministic stand-ins, not models; the thresholds that decide what
// counts as similar must be calibrated on the real provider.
//
// A text's concepts are its content words, lowercased, with stop words
// left out, reduced to a crude stem (plural, -ing and -ed endings cut),
// and mapped through a small table of wedding-domain synonyms and phrases
// (service and ceremony, sunset and golden hour, the first dance). Clock
// times are one concept each whatever their form: 3 pm, 3:00 p.m., 15:00
// and 15.00 are all "@15:00"; noon and midnight too. Other numbers, in
// digits or in words up to sixty, are "#" and the number.

// conceptPhrases are expressions replaced, in lowercased text, before it is
// split into words: multi-word concepts, and phrases with the same meaning.
var conceptPhrases = strings.NewReplacer(
	"\u2019", "'",
	"a.m.", "am",
	"p.m.", "pm",
	"black and white", " monochrome ",
	"black-and-white", " monochrome ",
	"golden hour", " sunset ",
	"golden-hour", " sunset ",
	"fairy lights", " fairylights ",
	"string lights", " fairylights ",
	"festoon lights", " fairylights ",
	"wedding breakfast", " weddingmeal ",
	"wedding meal", " weddingmeal ",
	"sit-down meal", " weddingmeal ",
	"seated wedding meal", " weddingmeal ",
	"first dance", " firstdance ",
	"last dance", " lastdance ",
	"final song", " lastdance ",
	"send-off", " sendoff ",
	"send off", " sendoff ",
	"cocktail hour", " drinksreception ",
	"drinks reception", " drinksreception ",
	"reception drinks", " drinksreception ",
	"getting ready", " preparation ",
	"getting-ready", " preparation ",
	"hair and makeup", " preparation ",
	"gluten-free", " glutenfree ",
	"gluten free", " glutenfree ",
	"step-free", " stepfree ",
	"step free", " stepfree ",
	"wet-weather", " rain ",
	"wet weather", " rain ",
	"floor-to-ceiling", " glasswall ",
	"full-height glass", " glasswall ",
	"eton mess", " etonmess ",
	"per head", " perhead ",
	"a head", " perhead ",
	"per guest", " perhead ",
	"each guest", " perhead ",
	"cake cutting", " cutcake ",
	"cutting the cake", " cutcake ",
	"cut the cake", " cutcake ",
	"in-house", " inhouse ",
	"own kitchen", " inhouse ",
	"exclusive use", " exclusiveuse ",
	"whole venue to yourselves", " exclusiveuse ",
	"last orders", " barclose ",
	"bar closes", " barclose ",
	"from behind", " backlight ",
)

// conceptSynonyms maps a word, or its stem, to the concept it stands for.
var conceptSynonyms = map[string]string{
	"service": "ceremony", "vow": "ceremony", "nuptial": "ceremony",
	"begin": "start", "commence": "start", "kick": "start", "open": "start",
	"finish": "end", "wrap": "end", "close": "end", "conclude": "end",
	"arrive": "arrive", "arrival": "arrive",
	"leave": "depart", "departure": "depart", "exit": "depart",
	"photo": "photo", "photograph": "photo", "picture": "photo", "shot": "photo", "portrait": "photo", "image": "photo",
	"photographer": "photographer",
	"guest":        "guest", "attendee": "guest", "invitee": "guest", "people": "guest", "everyone": "guest",
	"onlooker": "guest", "watch": "guest",
	"couple": "couple", "newlywed": "couple", "bride": "couple", "groom": "couple",
	"meal": "weddingmeal", "dinner": "dinner", "supper": "dinner", "banquet": "dinner",
	"speech": "toast", "toast": "toast",
	"reception": "reception", "party": "reception",
	"cocktail": "drinksreception", "canape": "canape",
	"venue": "venue", "location": "venue", "space": "venue", "site": "venue",
	"hold": "capacity", "seat": "capacity", "accommodate": "capacity", "host": "capacity", "capacity": "capacity",
	"house": "manor", "manor": "manor", "mansion": "manor",
	"price": "cost", "cost": "cost", "hire": "cost", "hiring": "cost", "package": "cost", "£": "cost",
	"monochrome": "monochrome", "candid": "candid", "unposed": "candid", "natural": "candid",
	"night": "evening", "evening": "evening", "nighttime": "evening",
	"sunset": "sunset", "dusk": "sunset",
	"embrace": "embrace", "hug": "embrace", "embracing": "embrace",
	"indoor": "indoor", "inside": "indoor", "indoors": "indoor",
	"pier": "jetty", "jetty": "jetty", "dock": "jetty",
	"lakeside": "lake", "lake": "lake",
	"calm": "calm", "still": "calm",
	"mood": "mood", "feel": "mood", "atmosphere": "mood",
	"foreground": "front", "front": "front",
	"heirloom": "heritage", "heritage": "heritage",
	"cold": "chilled", "chilled": "chilled",
	"pea":   "pea",
	"roast": "roast", "roasted": "roast",
	"vegetarian": "vegetarian", "veggie": "vegetarian",
	"dessert": "dessert", "pudding": "dessert",
	"starter": "starter", "start": "start",
	"main":  "main",
	"label": "label", "allergen": "allergen", "allergy": "allergen",
	"contain": "contain",
	"centre":  "central", "center": "central", "central": "central",
	"outdoor": "terrace", "terrace": "terrace",
	"lift": "lift", "elevator": "lift",
	"parking": "park", "park": "park",
	"neighbouring": "nextdoor", "adjacent": "nextdoor", "nextdoor": "nextdoor",
	"overlook": "view", "view": "view",
	"staff": "team", "team": "team", "crew": "team",
	"set": "setup", "setup": "setup", "dress": "setup", "decorate": "setup",
	"trio": "band", "band": "band", "quartet": "band", "music": "band",
	"dance": "dance", "dancing": "dance",
	"sparkler": "sparkler",
	"carriage": "carriage", "car": "carriage",
	"confetti": "confetti",
	"lawn":     "lawn", "outside": "lawn",
	"group":       "group",
	"preparation": "preparation", "prep": "preparation",
	"wind": "wind", "breeze": "wind",
	"rain":     "rain",
	"licensed": "licensed", "license": "licensed", "licence": "licensed",
	"bedroom": "bedroom", "room": "bedroom",
	"biodegradable": "biodegradable",
	"amplified":     "band",
}

// conceptNumbers are number words read as numbers.
var conceptNumbers = map[string]int{
	"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
	"eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
	"eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
}

// fillerWords carry no content.
var fillerWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about after all also an and any are as at be because been before being
		between both but by can could do does during each either every for from had has have here how i if in
		into is it its just let like may me more most must my near no nor not now of off on once only or other
		our out over per so some such than that the their them then there these they this those through to
		too under until up upon us very was we well were what when where which while who whom why will with
		would you your yours he she her his him it's i'd here's there's day plan step suggest suggested recommend good choice
		note make made made get gets go goes take takes taken give gives see whole full many much follow
		followed along plus both either via so-called simple schedule timeline tag tags`) {
		m[w] = true
	}
	return m
}()

// concept is one concept of a text and the segment (sentence or line) and
// word position it comes from.
type concept struct {
	name    string
	segment int
	pos     int
}

// concepts returns the concepts of s in the order they appear.
func concepts(s string) []concept {
	s = conceptPhrases.Replace(strings.ToLower(s))
	var out []concept
	seg, pos := 0, 0
	words := meaningWords(s)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w.text == "" {
			seg++ // a sentence or line ended
			continue
		}
		next, money := "", i > 0 && words[i-1].text == "£"
		if i+1 < len(words) {
			next = words[i+1].text
		}
		if t, used, ok := clockTime(w.text, next); ok && !money {
			out = append(out, concept{name: t, segment: seg, pos: pos})
			i += used
			pos++
			continue
		}
		if n, ok := number(w.text); ok {
			out = append(out, concept{name: "#" + strconv.Itoa(n), segment: seg, pos: pos})
			pos++
			continue
		}
		if fillerWords[w.text] || len(w.text) < 2 && w.text != "£" {
			continue
		}
		c := conceptOf(w.text)
		if c == "" {
			continue
		}
		out = append(out, concept{name: c, segment: seg, pos: pos})
		pos++
	}
	return out
}

// word is one word of a text; an empty one marks the end of a sentence or
// line.
type word struct{ text string }

// meaningWords splits lowercased s into words: runs of letters and digits,
// with ':' or '.' inside a number (15:00, 3.30) and ',' inside a number
// (9,500, read as 9500) kept, '£' as a word of its own, and an empty word
// at the end of each sentence or clause (. ! ? ; , or a line break).
func meaningWords(s string) []word {
	var out []word
	rs := []rune(s)
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, word{text: string(cur)})
			cur = cur[:0]
		}
	}
	for i, r := range rs {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			cur = append(cur, r)
		case r == '\'' && len(cur) > 0 && i+1 < len(rs) && unicode.IsLetter(rs[i+1]):
			cur = append(cur, r)
		case (r == ':' || r == '.' || r == ',') && len(cur) > 0 && unicode.IsDigit(cur[len(cur)-1]) &&
			i+1 < len(rs) && unicode.IsDigit(rs[i+1]):
			if r != ',' {
				cur = append(cur, r)
			}
		case r == '£' || r == '$' || r == '€':
			flush()
			out = append(out, word{text: "£"})
		case r == '.' || r == '!' || r == '?' || r == ';' || r == ',' || r == '\n':
			flush()
			if len(out) > 0 && out[len(out)-1].text != "" {
				out = append(out, word{})
			}
		default:
			flush()
		}
	}
	flush()
	return out
}

// clockTime reads a clock time from w and the word after it: "3pm", "3",
// "pm"; "15:00"; "3:30", "p"... It returns the concept, how many words
// after w it used and whether w was a time.
func clockTime(w, next string) (string, int, bool) {
	switch w {
	case "noon", "midday":
		return "@12:00", 0, true
	case "midnight":
		return "@00:00", 0, true
	}
	digits := strings.TrimRight(w, "apm")
	suffix := w[len(digits):]
	used := 0
	if suffix == "" && (next == "am" || next == "pm" || next == "a" || next == "p") {
		suffix, used = next, 1
	}
	h, m, colon := digits, "00", false
	if i := strings.IndexAny(digits, ":."); i >= 0 {
		h, m, colon = digits[:i], digits[i+1:], true
	}
	hour, err1 := strconv.Atoi(h)
	minute, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || len(m) != 2 || hour > 23 || minute > 59 || (!colon && suffix == "") {
		return "", 0, false
	}
	switch {
	case strings.HasPrefix(suffix, "p") && hour < 12:
		hour += 12
	case strings.HasPrefix(suffix, "a") && hour == 12:
		hour = 0
	case suffix != "" && suffix != "am" && suffix != "pm" && suffix != "a" && suffix != "p":
		return "", 0, false
	}
	return "@" + twoDigits(hour) + ":" + twoDigits(minute), used, true
}

// twoDigits formats n with a leading zero.
func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// number reads a number in digits (ordinals such as 20th too) or a number
// word.
func number(w string) (int, bool) {
	if n, ok := conceptNumbers[w]; ok {
		return n, true
	}
	for _, suf := range []string{"st", "nd", "rd", "th"} {
		if t, ok := strings.CutSuffix(w, suf); ok && t != "" {
			w = t
			break
		}
	}
	n, err := strconv.Atoi(w)
	return n, err == nil
}

// conceptOf maps a word to its concept: a synonym's (of the word, its stem
// or its stem with an e, as -ing and -ed forms lose it), else its stem
// without a final e (so arrive, arrives and arriving are one concept).
func conceptOf(w string) string {
	w = strings.TrimSuffix(w, "'s")
	w = strings.ReplaceAll(w, "'", "")
	if c, ok := conceptSynonyms[w]; ok {
		return c
	}
	st := stem(w)
	if fillerWords[st] {
		return ""
	}
	for _, k := range []string{st, st + "e"} {
		if c, ok := conceptSynonyms[k]; ok {
			return c
		}
	}
	if len(st) > 4 {
		st = strings.TrimSuffix(st, "e")
	}
	return st
}

// stem cuts a few English endings: a crude stemmer, enough to make plural
// and singular, and -ing and -ed forms, alike.
func stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 5 && strings.HasSuffix(w, "ing"):
		return undouble(w[:n-3])
	case n > 4 && strings.HasSuffix(w, "ed"):
		return undouble(w[:n-2])
	case n > 4 && (strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "xes") ||
		strings.HasSuffix(w, "sses")):
		return w[:n-2]
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us"):
		return w[:n-1]
	}
	return w
}

// undouble drops the last letter of a stem that doubled it (planned,
// setting).
func undouble(w string) string {
	n := len(w)
	if n > 2 && w[n-1] == w[n-2] && !strings.ContainsRune("aeiouls", rune(w[n-1])) {
		return w[:n-1]
	}
	return w
}

// conceptCounts returns how often each concept occurs.
func conceptCounts(cs []concept) map[string]float64 {
	m := make(map[string]float64, len(cs))
	for _, c := range cs {
		m[c.name]++
	}
	return m
}

// meaningVector returns the unit embedding of text for model, of dims
// dimensions, and whether text had any concept. Each concept adds its
// count, with a sign, to one coordinate chosen by hashing it with the
// model (feature hashing), so that texts sharing concepts have a high
// cosine similarity and texts sharing none about zero; a small
// deterministic component of the text's own keeps different texts from
// being exactly alike. Clock times and numbers weigh twice: they are
// facts.
func meaningVector(model, text string, dims int, seed uint64) ([]float32, bool) {
	counts := conceptCounts(concepts(text))
	if len(counts) == 0 {
		return nil, false
	}
	v := make([]float64, dims)
	var norm float64
	for c, n := range counts {
		h := fnvString(fnvString(fnvOffset64, model), c)
		w := n
		if c[0] == '@' || c[0] == '#' {
			w *= 2
		}
		if h>>63 == 1 {
			w = -w
		}
		v[h%uint64(dims)] += w
	}
	for _, f := range v {
		norm += f * f
	}
	noise := embedding(seed, dims)
	const own = 0.08 // share of the text's own component
	scale := 1 / math.Sqrt(norm)
	out := make([]float32, dims)
	var n2 float64
	for i := range v {
		f := v[i]*scale + own*float64(noise[i])
		out[i] = float32(f)
		n2 += f * f
	}
	inv := 1 / math.Sqrt(n2)
	for i := range out {
		out[i] = float32(float64(out[i]) * inv)
	}
	return out, true
}
