package proxy

import (
	"bytes"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/policy"
)

// admissionStep is one step of admission. It reports true when the
// request goes on to the next step; a step that stops the request has
// answered the client itself (an error, a cached answer, a refusal).
type admissionStep func(s *Server, ctx *fasthttp.RequestCtx, x *exchange) bool

// admission is the order in which a request is admitted: room on the
// listener, its framing, its caller, its body, its plan, the cache, the
// shadow comparison and the quota. A request that passes every step is a
// ticket: a plan of targets, the body to send them and, on platform keys, a
// quota reservation.
var admission = [...]admissionStep{
	(*Server).shed,
	(*Server).checkFraming,
	(*Server).identify,
	(*Server).scan,
	(*Server).planTargets,
	(*Server).lookup,
	(*Server).startShadow,
	(*Server).reserve,
}

// Handle is the fasthttp handler of the proxy listener: it admits the
// request and runs its ticket against the planned targets.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	x := s.acquire()
	s.metrics.InFlight(1)
	s.open.Add(1)
	x.setRequestID(ctx)
	if s.tracer != nil {
		x.startTrace(ctx)
	}
	if s.admit(ctx, x) && s.run(ctx, x) {
		return // the stream writer finishes the exchange
	}
	x.status = ctx.Response.StatusCode()
	s.finish(x)
}

// admit runs the admission steps; it reports true when the request holds
// a ticket to run, false when the client has its answer.
func (s *Server) admit(ctx *fasthttp.RequestCtx, x *exchange) bool {
	for _, step := range admission {
		if !step(s, ctx, x) {
			return false
		}
	}
	x.askStreamUsage()
	return true
}

// checkFraming refuses requests whose framing is ambiguous (smuggling)
// and paths outside the OpenAI API.
func (s *Server) checkFraming(ctx *fasthttp.RequestCtx, x *exchange) bool {
	if e := framingError(ctx.Request.Header.RawHeaders()); e != nil {
		x.fail(ctx, e)
		ctx.SetConnectionClose()
		return false
	}
	if path := ctx.Path(); !bytes.HasPrefix(path, []byte("/v1/")) {
		x.fail(ctx, &Error{Status: fasthttp.StatusNotFound, Type: typeInvalidRequest, Code: "unknown_url",
			Message: "Unknown request URL: " + string(ctx.Method()) + " " + string(path) + ". veil serves the OpenAI API under /v1/."})
		return false
	}
	return true
}

// identify authenticates the caller and the supplier it acts for, and
// notes the endpoint and query.
func (s *Server) identify(ctx *fasthttp.RequestCtx, x *exchange) bool {
	id, failure := x.rt.Auth.Authenticate(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization),
		ctx.Request.Header.Peek("X-Supplier-Id"), ctx.RemoteIP().String())
	if failure != nil {
		x.fail(ctx, &Error{Status: failure.Status, Type: failure.Type(), Code: failure.Code, Message: failure.Message})
		return false
	}
	x.caller = id.Caller
	x.supplier = append(x.supplier[:0], id.Supplier...)
	x.call.Suffix = ctx.Path()[len("/v1"):]
	x.call.Query = ctx.URI().QueryString()
	if len(x.call.Query) > 0 {
		x.queryBuf = appendSafeQuery(x.queryBuf[:0], x.call.Query)
		x.call.Query = x.queryBuf
	}
	x.ep = classify(ctx.Method(), x.call.Suffix)
	x.workflow = s.workflowName(x.rt, ctx.Request.Header.Peek("X-Workflow"))
	x.body = ctx.PostBody()
	return true
}

// scan reads model and stream settings of an understood endpoint's body
// without decoding it.
func (s *Server) scan(ctx *fasthttp.RequestCtx, x *exchange) bool {
	if !x.ep.understood {
		return true
	}
	if err := jsonfield.ScanRequest(x.body, &x.fields); err != nil {
		e := &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_json",
			Message: "veil could not parse the JSON body of the request: " + err.Error()}
		var fe *jsonfield.FieldError
		if errors.As(err, &fe) {
			e.Code, e.Param = "invalid_type", fe.Field
			e.Message = "Invalid type for '" + fe.Field + "': " + fe.Msg
		}
		x.fail(ctx, e)
		return false
	}
	if len(x.fields.Model) > 0 && !validModel(x.fields.Model) {
		x.fail(ctx, &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_model", Param: "model",
			Message: "The model name is not valid: veil accepts up to 256 letters, digits and . _ - : / @ +, without empty, . or .. path segments."})
		return false
	}
	return true
}

// planTargets asks the supplier's migration, if any, which system serves
// the request, then policy for the targets to try in order.
func (s *Server) planTargets(ctx *fasthttp.RequestCtx, x *exchange) bool {
	x.spread = s.spread.Add(1) * 0x9E3779B97F4A7C15
	req := policy.Request{Model: x.fields.Model, Understood: x.ep.understood, Supplier: x.supplier,
		Workflow: ctx.Request.Header.Peek("X-Workflow"), Now: x.start, Spread: x.spread, Health: s.health,
		Load: s.health, Keys: s.keyPresence}
	s.route(x, &req)
	plan, err := x.rt.Policy.Plan(x.planBuf[:0], &req)
	switch {
	case errors.Is(err, policy.ErrNoProviderInRegion):
		x.fail(ctx, noProviderInRegion(err, x.supplier))
		return false
	case errors.Is(err, policy.ErrModelNotAllowed):
		x.fail(ctx, &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "model_not_allowed", Param: "model",
			Message: "The model `" + string(x.fields.Model) + "` is not allowed for the " + x.workflow + " workflow."})
		return false
	case err != nil:
		x.fail(ctx, &Error{Status: fasthttp.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
			Message: "The model `" + string(x.fields.Model) + "` is not served by any provider configured in veil."})
		return false
	case x.ep.needsModel && len(plan[0].Model) == 0:
		x.fail(ctx, &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "missing_required_parameter",
			Param: "model", Message: "you must provide a model parameter"})
		return false
	}
	x.plan = plan
	if x.ep.understood && !bytes.Equal(plan[0].Model, x.fields.Model) {
		// An alias or a workflow's model: the provider gets the real one.
		if b, err := jsonfield.SetString(x.bodyBuf[:0], x.body, "model", s.interns.get(plan[0].Model)); err == nil {
			x.bodyBuf, x.body = b, b
		}
	}
	return true
}

// streamed reports whether the answer is copied as it arrives: a stream
// the client asked for, or a pass-through call.
func (x *exchange) streamed() bool {
	return !x.ep.understood || (x.ep.streams && x.fields.Stream)
}

// askStreamUsage asks the provider for the usage chunk of a stream whose
// client did not; the usage tap removes it (and the "usage":null of every
// other chunk) again, so the client sees what it asked for.
func (x *exchange) askStreamUsage() {
	if !x.streamed() || !x.ep.understood || !x.ep.usageOption || x.fields.IncludeUsage {
		return
	}
	if b, err := jsonfield.SetIncludeUsage(x.scratch[:0], x.body); err == nil {
		// x.body may live in bodyBuf: the two buffers swap roles.
		x.bodyBuf, x.scratch = b, x.bodyBuf[:0]
		x.body, x.usage.injected = b, true
	}
}

// builtinWorkflows are the workflows every config knows.
var builtinWorkflows = map[string]bool{"photography": true, "venue": true, "catering": true, "planning": true}

// workflowOther is the workflow recorded for a name that is neither built
// in nor configured, so that a caller cannot make up aggregates and label
// values.
const workflowOther = "other"

// workflowName is the workflow a request is recorded under: its
// X-Workflow when that names a built-in or configured workflow, "other"
// for any other name, empty for none.
func (s *Server) workflowName(rt *Runtime, h []byte) string {
	if len(h) == 0 {
		return ""
	}
	if builtinWorkflows[string(h)] {
		return s.interns.get(h)
	}
	if rt != nil && rt.Config != nil {
		if _, ok := rt.Config.Route(string(h)); ok {
			return s.interns.get(h)
		}
	}
	return workflowOther
}
