package commands

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/soc/isolate-bot/defender"
)

// Op is what a parsed slash command asks for.
type Op int

const (
	OpHelp Op = iota
	OpIsolate
	OpUnisolate
	OpStatus
	OpCancel
)

// MaxCommentRunes bounds the analyst's comment (after trimming).
const MaxCommentRunes = 1000

// Usage lines, shown with every UsageError and by help. A machine list is
// "web-01, web-02,db-01"; a tag is tag:Tier0, or tag:"Tier 0" with spaces.
const (
	UsageIsolate   = "/isolate <machine[,machine…]|tag:MachineTag> <full|selective|unmanaged> <comment>"
	UsageUnisolate = "/unisolate <machine[,machine…]|tag:MachineTag> <comment>"
	UsageStatus    = "/isolate status <machine|request-id>"
	UsageCancel    = "/isolate cancel <request-id>"
)

// Parsed is a syntactically valid slash command. A request names one
// machine (Machine), a list of machines (Machines) or a tag (Tag), never
// two of these; see Bulk.
type Parsed struct {
	Op          Op
	Machine     string // lower-case 40-hex id or host name; empty for help/cancel, status by request id and Bulk
	MachineIsID bool   // Machine is a 40-hex MDE machine id
	// Machines is a list of two or more distinct machines, in the order
	// given, at most the Parser's BulkMax.
	Machines []MachineRef
	// Duplicates is how many repeated entries the list had (dropped from
	// Machines, or from a list that named one machine twice).
	Duplicates int
	// Tag is tag:<MDE machine tag>: every machine carrying it. As typed,
	// with Slack's &amp; &lt; &gt; decoded: escape it for OData and Slack.
	Tag       string
	Type      defender.IsolationType
	Comment   string // trimmed but otherwise raw: renderers escape it
	RequestID string // "r-<n>" for status/cancel
}

// UsageError is a command the parser rejected. Problem names what is wrong;
// Usage shows the right form.
type UsageError struct {
	Problem string
	Usage   string
}

func (e *UsageError) Error() string { return e.Problem + " Usage: " + e.Usage }

func usageErr(usage, format string, args ...any) *UsageError {
	return &UsageError{Problem: fmt.Sprintf(format, args...), Usage: usage}
}

// Bulk reports whether p names a list of machines or a tag rather than one
// machine.
func (p Parsed) Bulk() bool { return len(p.Machines) > 0 || p.Tag != "" }

// Parser parses slash commands under the configured limits. It is a value
// the wiring builds from the configuration rather than a package variable,
// so tests and replicas with different limits cannot race on it.
type Parser struct {
	// BulkMax is the most distinct machines a list may name (BULK_MAX,
	// passed by the wiring); 0 or less leaves lists unbounded here and the
	// caller bounds them. A tag's machines are only known after the
	// look-up, so the caller applies it to them.
	BulkMax int
}

// Parse parses with the zero Parser (lists unbounded).
func Parse(command, text string) (Parsed, error) { return Parser{}.Parse(command, text) }

// Parse parses the text of /isolate or /unisolate. Keywords (help, status,
// cancel) win over a machine of the same name.
func (ps Parser) Parse(command, text string) (Parsed, error) {
	cmd := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(command), "/"))
	first, rest := nextToken(text)
	switch cmd {
	case "isolate":
		switch strings.ToLower(first) {
		case "", "help":
			return Parsed{Op: OpHelp}, nil
		case "status":
			return parseStatus(rest)
		case "cancel":
			return parseCancel(rest)
		}
		return ps.parseRequest(OpIsolate, text, UsageIsolate)
	case "unisolate":
		if first == "" || strings.EqualFold(first, "help") {
			return Parsed{Op: OpHelp}, nil
		}
		return ps.parseRequest(OpUnisolate, text, UsageUnisolate)
	}
	return Parsed{}, usageErr(UsageIsolate, "Unknown command %q: use /isolate or /unisolate.", clip(command, 40))
}

// parseRequest parses "<machines> [<type>] <comment>".
func (ps Parser) parseRequest(op Op, text, usage string) (Parsed, error) {
	p, rest, err := ps.parseMachines(text, usage)
	if err != nil {
		return Parsed{}, err
	}
	p.Op = op
	if op == OpIsolate {
		typ, more := nextToken(rest)
		if typ == "" {
			return Parsed{}, usageErr(usage, "Missing the isolation type (full, selective or unmanaged).")
		}
		t, ok := isolationType(typ)
		if !ok {
			return Parsed{}, usageErr(usage, "Unknown isolation type %q: use full, selective or unmanaged.", clip(typ, 40))
		}
		p.Type, rest = t, more
	}
	if p.Comment, err = parseComment(rest, usage); err != nil {
		return Parsed{}, err
	}
	return p, nil
}

func parseStatus(rest string) (Parsed, error) {
	arg, more := nextToken(rest)
	if arg == "" {
		return Parsed{}, usageErr(UsageStatus, "Missing the machine or request id.")
	}
	if strings.TrimSpace(more) != "" {
		return Parsed{}, usageErr(UsageStatus, "`status` takes one argument, a machine or a request id.")
	}
	if id, ok := parseRequestID(arg); ok {
		return Parsed{Op: OpStatus, RequestID: id}, nil
	}
	m, isID, err := parseMachine(arg, UsageStatus)
	if err != nil {
		return Parsed{}, err
	}
	return Parsed{Op: OpStatus, Machine: m, MachineIsID: isID}, nil
}

func parseCancel(rest string) (Parsed, error) {
	arg, more := nextToken(rest)
	if arg == "" {
		return Parsed{}, usageErr(UsageCancel, "Missing the request id (like r-7).")
	}
	if strings.TrimSpace(more) != "" {
		return Parsed{}, usageErr(UsageCancel, "`cancel` takes one argument, the request id.")
	}
	id, ok := parseRequestID(arg)
	if !ok {
		return Parsed{}, usageErr(UsageCancel, "%q is not a request id (like r-7).", clip(arg, 60))
	}
	return Parsed{Op: OpCancel, RequestID: id}, nil
}

// parseRequestID accepts "r-<n>" in any case and returns it normalised.
func parseRequestID(s string) (string, bool) {
	if len(s) < 3 || len(s) > 20 || !strings.EqualFold(s[:2], "r-") {
		return "", false
	}
	n, err := strconv.ParseUint(s[2:], 10, 63)
	if err != nil || n == 0 {
		return "", false
	}
	return "r-" + strconv.FormatUint(n, 10), true
}

func isolationType(s string) (defender.IsolationType, bool) {
	switch strings.ToLower(s) {
	case "full":
		return defender.Full, true
	case "selective":
		return defender.Selective, true
	case "unmanaged", "unmanageddevice":
		return defender.UnManagedDevice, true
	}
	return "", false
}

func parseComment(s, usage string) (string, error) {
	c := strings.TrimFunc(s, unicode.IsSpace)
	if c == "" {
		return "", usageErr(usage, "A comment is required: say why (it is recorded in MDE and in the audit trail).")
	}
	if !utf8.ValidString(c) {
		return "", usageErr(usage, "The comment is not valid UTF-8 text.")
	}
	if n := utf8.RuneCountInString(c); n > MaxCommentRunes {
		return "", usageErr(usage, "The comment is %d characters long; the limit is %d.", n, MaxCommentRunes)
	}
	return c, nil
}

// parseMachine unwraps Slack's link formatting and validates a machine id
// or host name. ids are lower-cased; host names are lower-cased too as DNS
// names are case-insensitive.
func parseMachine(tok, usage string) (string, bool, error) {
	s := tok
	if strings.HasPrefix(s, "<") {
		if !strings.HasSuffix(s, ">") || len(s) < 3 {
			return "", false, usageErr(usage, "%q is not a machine id or host name.", clip(tok, 80))
		}
		inner := s[1 : len(s)-1]
		target, label, hasLabel := strings.Cut(inner, "|")
		low := strings.ToLower(target)
		switch {
		case strings.HasPrefix(low, "http://"), strings.HasPrefix(low, "https://"):
			if hasLabel && label != "" {
				s = label
			} else {
				s = target[strings.Index(target, "//")+2:]
			}
		default:
			// mailto:, @user, #channel, !here…: Slack turned it into something else.
			return "", false, usageErr(usage, "%q is not a machine: give an MDE machine id or a host name.", clip(tok, 80))
		}
	}
	if isMachineID(s) {
		return strings.ToLower(s), true, nil
	}
	if !isHostName(s) {
		return "", false, usageErr(usage, "%q is not a machine: give a 40-character MDE machine id or a host name (letters, digits, '-', '.').", clip(tok, 80))
	}
	return strings.ToLower(strings.TrimSuffix(s, ".")), false, nil
}

func isMachineID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isHostName checks RFC 1123 host names (labels of 1–63 letters, digits and
// inner hyphens, ≤253 characters), tolerating '_' as MDE names may carry it.
// One trailing dot is allowed.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// nextToken splits off the first whitespace-delimited token.
func nextToken(s string) (tok, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// clip shortens s for quoting in an error message.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
