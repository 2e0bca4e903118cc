package fakemde

import (
	"fmt"
	"strings"
	"time"
)

// record is one entity as a filter sees it: its string fields by OData
// name, its date-time fields (timeFields), and its machine tags.
type record struct {
	fields map[string]string
	times  map[string]time.Time
	tags   []string
}

// timeFields are the filterable fields that hold a date-time: they take
// the comparisons ge, gt, le and lt with an unquoted literal, never eq
// with a string.
var timeFields = map[string]bool{"creationDateTimeUtc": true}

// timeOps are the comparisons a date-time field takes; each reports
// whether a compares to b as the operator says.
var timeOps = map[string]func(a, b time.Time) bool{
	"ge": func(a, b time.Time) bool { return !a.Before(b) },
	"gt": func(a, b time.Time) bool { return a.After(b) },
	"le": func(a, b time.Time) bool { return !a.After(b) },
	"lt": func(a, b time.Time) bool { return a.Before(b) },
}

// pred is a parsed $filter.
type pred func(record) bool

// parseFilter parses the OData subset the client sends: `f eq 'x'`,
// `startswith(f,'x')`, `machineTags/any(t: t eq 'x')`, `d ge <date-time>`
// (also gt, le, lt; d a timeFields name, the literal unquoted RFC 3339,
// as OData v4 writes DateTimeOffset), `and`, `or` (and binding tighter)
// and parentheses. fields are the names it may compare.
// Literals compare case-insensitively, as MDE does for names and ids.
// Anything else is an error (MDE answers 400 ODataError).
func parseFilter(s string, fields map[string]bool) (pred, error) {
	p := &parser{src: s, fields: fields}
	p.next()
	e, err := p.or()
	if err == nil {
		err = p.err
	}
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.fail("unexpected %q", p.tok.text)
	}
	return e, nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tPunct // ( ) , : /
	tBare  // an unquoted literal starting with a digit (a date-time)
)

type token struct {
	kind tokKind
	text string // the identifier, the literal's value, or the punctuation
}

type parser struct {
	src    string
	pos    int
	tok    token
	err    error
	fields map[string]bool
}

func (p *parser) fail(format string, a ...any) error {
	return fmt.Errorf("$filter at byte %d: %s", p.pos, fmt.Sprintf(format, a...))
}

// next reads the next token into p.tok (p.err on a broken literal).
func (p *parser) next() {
	for p.pos < len(p.src) && p.src[p.pos] == ' ' {
		p.pos++
	}
	if p.pos >= len(p.src) {
		p.tok = token{kind: tEOF}
		return
	}
	c := p.src[p.pos]
	switch {
	case strings.IndexByte("(),:/", c) >= 0:
		p.pos++
		p.tok = token{kind: tPunct, text: string(c)}
	case c == '\'':
		var b strings.Builder
		for i := p.pos + 1; i < len(p.src); i++ {
			if p.src[i] != '\'' {
				b.WriteByte(p.src[i])
				continue
			}
			if i+1 < len(p.src) && p.src[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			p.pos = i + 1
			p.tok = token{kind: tString, text: b.String()}
			return
		}
		p.err = p.fail("unterminated string literal")
		p.pos, p.tok = len(p.src), token{kind: tEOF}
	case c >= '0' && c <= '9':
		i := p.pos
		for i < len(p.src) && strings.IndexByte("0123456789:.+-TZtz", p.src[i]) >= 0 {
			i++
		}
		p.tok = token{kind: tBare, text: p.src[p.pos:i]}
		p.pos = i
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		i := p.pos
		for i < len(p.src) && (p.src[i] == '_' || p.src[i] >= 'a' && p.src[i] <= 'z' || p.src[i] >= 'A' && p.src[i] <= 'Z' || p.src[i] >= '0' && p.src[i] <= '9') {
			i++
		}
		p.tok = token{kind: tIdent, text: p.src[p.pos:i]}
		p.pos = i
	default:
		p.err = p.fail("unexpected character %q", c)
		p.pos, p.tok = len(p.src), token{kind: tEOF}
	}
}

// expect consumes a token of kind with text (any text when "").
func (p *parser) expect(kind tokKind, text string) (string, error) {
	if p.err != nil {
		return "", p.err
	}
	if p.tok.kind != kind || text != "" && p.tok.text != text {
		if text == "" {
			text = map[tokKind]string{tIdent: "a name", tString: "a string literal", tBare: "a date-time literal"}[kind]
		}
		return "", p.fail("want %s, got %q", text, p.tok.text)
	}
	t := p.tok.text
	p.next()
	return t, nil
}

func (p *parser) or() (pred, error) {
	return p.chain("or", p.and, func(a, b pred) pred { return func(r record) bool { return a(r) || b(r) } })
}

func (p *parser) and() (pred, error) {
	return p.chain("and", p.primary, func(a, b pred) pred { return func(r record) bool { return a(r) && b(r) } })
}

func (p *parser) chain(word string, sub func() (pred, error), join func(a, b pred) pred) (pred, error) {
	e, err := sub()
	for err == nil && p.tok.kind == tIdent && p.tok.text == word {
		p.next()
		var r pred
		if r, err = sub(); err == nil {
			e = join(e, r)
		}
	}
	return e, err
}

func (p *parser) primary() (pred, error) {
	if p.tok.kind == tPunct && p.tok.text == "(" {
		p.next()
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		_, err = p.expect(tPunct, ")")
		return e, err
	}
	name, err := p.expect(tIdent, "")
	if err != nil {
		return nil, err
	}
	switch {
	case name == "startswith":
		return p.startswith()
	case name == "machineTags" && p.fields["machineTags"]:
		return p.anyTag()
	case !p.fields[name]:
		return nil, p.fail("cannot filter on %q", name)
	case timeFields[name]:
		return p.compareTime(name)
	}
	if _, err := p.expect(tIdent, "eq"); err != nil {
		return nil, err
	}
	lit, err := p.expect(tString, "")
	return func(r record) bool { return strings.EqualFold(r.fields[name], lit) }, err
}

// compareTime parses the rest of `d ge 2026-12-01T10:00:00Z` (or gt, le,
// lt) after the field d.
func (p *parser) compareTime(field string) (pred, error) {
	if p.err != nil {
		return nil, p.err
	}
	cmp, ok := timeOps[p.tok.text]
	if p.tok.kind != tIdent || !ok {
		return nil, p.fail("%q takes ge, gt, le or lt, got %q", field, p.tok.text)
	}
	p.next()
	lit, err := p.expect(tBare, "")
	if err != nil {
		return nil, err
	}
	at, err := time.Parse(time.RFC3339Nano, lit)
	if err != nil {
		return nil, p.fail("%q is not an RFC 3339 date-time", lit)
	}
	return func(r record) bool {
		t, ok := r.times[field]
		return ok && cmp(t, at)
	}, nil
}

func (p *parser) startswith() (pred, error) {
	var field, lit string
	_, err := p.expect(tPunct, "(")
	if err == nil {
		field, err = p.expect(tIdent, "")
	}
	if err == nil && (!p.fields[field] || timeFields[field]) {
		err = p.fail("cannot filter on %q with startswith", field)
	}
	if err == nil {
		_, err = p.expect(tPunct, ",")
	}
	if err == nil {
		lit, err = p.expect(tString, "")
	}
	if err == nil {
		_, err = p.expect(tPunct, ")")
	}
	lit = strings.ToLower(lit)
	return func(r record) bool { return strings.HasPrefix(strings.ToLower(r.fields[field]), lit) }, err
}

// anyTag parses the rest of `machineTags/any(v: v eq 'x')`.
func (p *parser) anyTag() (pred, error) {
	var v, v2, lit string
	_, err := p.expect(tPunct, "/")
	if err == nil {
		_, err = p.expect(tIdent, "any")
	}
	if err == nil {
		_, err = p.expect(tPunct, "(")
	}
	if err == nil {
		v, err = p.expect(tIdent, "")
	}
	if err == nil {
		_, err = p.expect(tPunct, ":")
	}
	if err == nil {
		v2, err = p.expect(tIdent, "")
	}
	if err == nil && v2 != v {
		err = p.fail("lambda variable %q is not %q", v2, v)
	}
	if err == nil {
		_, err = p.expect(tIdent, "eq")
	}
	if err == nil {
		lit, err = p.expect(tString, "")
	}
	if err == nil {
		_, err = p.expect(tPunct, ")")
	}
	return func(r record) bool {
		for _, t := range r.tags {
			if strings.EqualFold(t, lit) {
				return true
			}
		}
		return false
	}, err
}
