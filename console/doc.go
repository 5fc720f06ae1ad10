// Package console serves veil's operator console on the admin listener:
// server-rendered HTML pages under /console/ for the providers' health,
// the suppliers' settings and routes, migrations (with a rollback for
// operators), shadow comparisons with their charts, and usage by who pays.
//
// The pages are html/template with their stylesheet embedded; charts are
// inline SVG drawn in Go; there is no script. A browser signs in with an
// admin token once, through a form, and then holds a session cookie with
// a random session ID; the token itself is never stored or sent again.
// Viewers read; operators and admins may also roll migrations back, with
// a CSRF token bound to the session, and every such action is audited
// with the operator's name.
package console
