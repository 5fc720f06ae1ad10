package similarity

// Rubrics are the judge's built-in rubrics of the workflows every config
// knows; a workflow's rubric in the config replaces its built-in one.
var Rubrics = map[string]string{
	"planning": "The answers are wedding-day timelines, schedules or plans. B matches A when it has the same " +
		"events, in the same order, at the same times (3 pm, 3:00 p.m. and 15:00 are the same time), at the same " +
		"places, with nothing missing, added or contradicted. Wording, layout (a list or prose) and politeness do " +
		"not matter. Each missing or extra event, changed time or swapped order lowers the score in proportion; " +
		"a timeline that contradicts A's main events (a different ceremony time) or is about something else " +
		"scores near 0.",
	"venue": "The answers describe a wedding venue. B matches A when it states the same facts: where it is and its " +
		"setting, its spaces, capacities, what is included, prices, rules (curfew, music, confetti, catering) and " +
		"accommodation, none of them contradicted. Tone and order do not matter. Each missing fact lowers the " +
		"score; a contradicted fact (another capacity, price or curfew) lowers it a lot; another venue or an " +
		"unrelated answer scores near 0.",
	"catering": "The answers are wedding menus or catering proposals. B matches A when it has the same courses and " +
		"dishes (the same food under another name counts as the same), the same dietary options and allergen " +
		"information (vegetarian, vegan, gluten-free), and the same quantities and prices, none contradicted. " +
		"Each missing dish or option lowers the score; a contradicted price, quantity or dietary promise lowers " +
		"it a lot; another menu scores near 0.",
	"photography": "The answers are tags, captions or descriptions of wedding photographs. B matches A when it " +
		"names the same subjects (people, moments), setting, light, colour and mood; synonyms count as the same " +
		"tag, and order and punctuation do not matter. Each missing tag lowers the score in proportion; tags " +
		"that contradict A (indoors for outdoors, night for golden hour, colour for black and white) or describe " +
		"another picture score near 0.",
}

// GenericRubric is the judge's rubric of a workflow without a rubric of
// its own.
const GenericRubric = "B matches A when it gives the same information and would serve the person who asked as " +
	"well: the same facts, numbers, names, times and recommendations, none missing or contradicted. Wording, " +
	"length and order do not matter unless the order carries meaning. Each missing fact lowers the score; a " +
	"contradiction lowers it a lot; an answer about something else scores near 0."

// DefaultRubric is the built-in rubric of a workflow: its own in Rubrics,
// else GenericRubric.
func DefaultRubric(workflow string) string {
	if r, ok := Rubrics[workflow]; ok {
		return r
	}
	return GenericRubric
}
