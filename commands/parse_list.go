package commands

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The machines of /isolate and /unisolate: one machine, a comma-separated
// list ("web-01, web-02,db-01"), or tag:<MDE machine tag>.

// MachineRef is one machine of a list, as the analyst named it.
type MachineRef struct {
	Machine string // lower-case 40-hex id or host name
	IsID    bool   // Machine is a 40-hex MDE machine id
}

// MaxTagRunes bounds a tag. MDE documents no limit; this only keeps a
// runaway paste out of the look-up URL and the card.
const MaxTagRunes = 200

// parseMachines parses the machines at the start of text and returns the
// text after them. Repeated entries (host names compare case-insensitively)
// are dropped and counted in Duplicates: a pasted list often repeats a
// name, and refusing the whole command for it would only slow the analyst
// down. A list that names one machine is the single form.
func (ps Parser) parseMachines(text, usage string) (Parsed, string, error) {
	first, _ := nextToken(text)
	if len(first) >= 4 && strings.EqualFold(first[:4], "tag:") {
		return parseTag(text, usage)
	}
	list, rest := splitList(text)
	if !strings.Contains(list, ",") {
		m, isID, err := parseMachine(list, usage)
		return Parsed{Machine: m, MachineIsID: isID}, rest, err
	}
	entries := strings.Split(unwrapLinks(list), ",")
	refs := make([]MachineRef, 0, len(entries))
	seen := make(map[string]struct{}, len(entries))
	for i, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return Parsed{}, "", usageErr(usage, "Entry %d of the machine list is empty (two commas in a row, or one at the end?).", i+1)
		case len(e) >= 4 && strings.EqualFold(e[:4], "tag:"):
			return Parsed{}, "", usageErr(usage, "%q: a tag cannot be mixed with machines; give a list of machines or one tag.", clip(e, 80))
		}
		m, isID, err := parseMachine(e, usage)
		if err != nil {
			return Parsed{}, "", err
		}
		if _, dup := seen[m]; !dup {
			seen[m] = struct{}{}
			refs = append(refs, MachineRef{Machine: m, IsID: isID})
		}
	}
	p := Parsed{Duplicates: len(entries) - len(refs)}
	if ps.BulkMax > 0 && len(refs) > ps.BulkMax {
		return Parsed{}, "", usageErr(usage, "%d machines given; at most %d at once.", len(refs), ps.BulkMax)
	}
	if len(refs) == 1 {
		p.Machine, p.MachineIsID = refs[0].Machine, refs[0].IsID
	} else {
		p.Machines = refs
	}
	return p, rest, nil
}

// unwrapLinks replaces Slack's web links in a list by the text the analyst
// typed, before the list is split: Slack may link "a.contoso.com,b.contoso.com"
// as one URL. Other <…> (mentions, mailto:) stay for parseMachine to refuse.
func unwrapLinks(list string) string {
	if !strings.Contains(list, "<") {
		return list
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(list, '<')
		j := strings.IndexByte(list[i+1:], '>')
		if i < 0 || j < 0 {
			b.WriteString(list)
			return b.String()
		}
		inner := list[i+1 : i+1+j]
		b.WriteString(list[:i])
		target, label, hasLabel := strings.Cut(inner, "|")
		low := strings.ToLower(target)
		switch {
		case !strings.HasPrefix(low, "http://") && !strings.HasPrefix(low, "https://"):
			b.WriteString(list[i : i+j+2])
		case hasLabel && label != "":
			b.WriteString(label)
		default:
			b.WriteString(target[strings.Index(target, "//")+2:])
		}
		list = list[i+j+2:]
	}
}

// splitList returns the machine list at the start of s and the text after
// it. The list goes on while a token ends with a comma or the next one
// starts with one, so spaces around the commas are allowed.
func splitList(s string) (list, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	end := 0
	for {
		i := strings.IndexFunc(s[end:], unicode.IsSpace)
		if i < 0 {
			return s, ""
		}
		tokEnd := end + i
		next := len(s) - len(strings.TrimLeftFunc(s[tokEnd:], unicode.IsSpace))
		if next == len(s) || s[tokEnd-1] != ',' && s[next] != ',' {
			return s[:tokEnd], s[tokEnd:]
		}
		end = next
	}
}

// Quotes that may open and close a tag with spaces: straight ones, and the
// curly ones that some keyboards substitute as the analyst types.
var tagQuotes = map[rune]rune{'"': '"', '“': '”'}

// parseTag parses tag:<tag> or tag:"<tag with spaces>" at the start of
// text (which begins with "tag:", any case).
func parseTag(text, usage string) (Parsed, string, error) {
	s := strings.TrimLeftFunc(text, unicode.IsSpace)[4:]
	open, n := utf8.DecodeRuneInString(s)
	if s == "" || unicode.IsSpace(open) {
		return Parsed{}, "", usageErr(usage, "The tag is missing: write tag:<MDE machine tag>, with no space after the colon.")
	}
	tag, rest := nextToken(s)
	if closing, quoted := tagQuotes[open]; quoted {
		i := strings.IndexRune(s[n:], closing)
		if i < 0 {
			return Parsed{}, "", usageErr(usage, "The tag's closing quote is missing: write tag:\"Tier 0\".")
		}
		tag, rest = s[n:n+i], s[n+i+utf8.RuneLen(closing):]
	} else if strings.Contains(tag, ",") {
		rest = "," // one error message for every mix below
	}
	if r, _ := utf8.DecodeRuneInString(rest); rest != "" && !unicode.IsSpace(r) || strings.HasPrefix(strings.TrimLeftFunc(rest, unicode.IsSpace), ",") {
		return Parsed{}, "", usageErr(usage, "Give one tag or a list of machines, not both or several tags (quote a tag that holds a comma or a space: tag:\"Tier 0\").")
	}
	tag = strings.TrimSpace(slackUnescape(tag))
	switch {
	case tag == "":
		return Parsed{}, "", usageErr(usage, "The tag is empty: write tag:<MDE machine tag>.")
	case !utf8.ValidString(tag) || strings.ContainsFunc(tag, unicode.IsControl):
		return Parsed{}, "", usageErr(usage, "The tag is not plain text.")
	case utf8.RuneCountInString(tag) > MaxTagRunes:
		return Parsed{}, "", usageErr(usage, "The tag is longer than %d characters.", MaxTagRunes)
	}
	return Parsed{Tag: tag}, rest, nil
}

// slackUnescape decodes the three entities Slack escapes in command text.
var slackUnescape = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace
