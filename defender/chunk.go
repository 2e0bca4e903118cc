package defender

import (
	"fmt"
	"strings"
)

// MaxLookupURLBytes bounds one batched look-up URL (scheme, host, path and
// query), about 2 KB. MDE documents no URL limit; this is a local
// precaution, since proxies and servers commonly refuse URLs of a few KB.
// Longer lists go out in several calls.
const MaxLookupURLBytes = 2000

// maxTop is MDE's largest $top and page size.
const maxTop = 10000

// orSep joins the terms of a batched filter.
const orSep = " or "

// orChunk is one look-up call of a batch.
type orChunk struct {
	query      string // encoded "$filter=…"
	first, end int    // the terms it holds: terms[first:end]
}

// chunkOr packs terms, in order, into filters head + t1 + " or " + t2 …
// + tail, each in as few calls as fit: the URL (base bytes of scheme, host
// and path, "?", the query, and reserve bytes the caller appends) stays
// within MaxLookupURLBytes, and a chunk holds at most maxTerms terms when
// maxTerms > 0. A term too long to fit alone is ErrBadRequest.
func chunkOr(op string, base int, head, tail string, terms []string, maxTerms, reserve int) ([]orChunk, error) {
	fixed := base + 1 + len(filterPrefix) + queryEscapedLen(head) + queryEscapedLen(tail) + reserve
	sep := queryEscapedLen(orSep)
	lens := make([]int, len(terms))
	for i, t := range terms {
		lens[i] = queryEscapedLen(t)
	}
	var chunks []orChunk
	for i := 0; i < len(terms); {
		size := fixed + lens[i]
		if size > MaxLookupURLBytes {
			return nil, badRequest(op, fmt.Sprintf("a look-up term of %d bytes does not fit in one %d-byte URL", lens[i], MaxLookupURLBytes))
		}
		j := i + 1
		for ; j < len(terms) && (maxTerms <= 0 || j-i < maxTerms); j++ {
			if size+sep+lens[j] > MaxLookupURLBytes {
				break
			}
			size += sep + lens[j]
		}
		var b strings.Builder
		b.Grow(size - base - 1 - reserve)
		b.WriteString(filterPrefix)
		writeQueryEscaped(&b, head)
		for k := i; k < j; k++ {
			if k > i {
				writeQueryEscaped(&b, orSep)
			}
			writeQueryEscaped(&b, terms[k])
		}
		writeQueryEscaped(&b, tail)
		chunks = append(chunks, orChunk{query: b.String(), first: i, end: j})
		i = j
	}
	return chunks, nil
}

// eqTerm is the filter term `field eq 'value'`.
func eqTerm(field, value string) string {
	var b strings.Builder
	b.Grow(len(field) + len(" eq ''") + len(value) + strings.Count(value, "'"))
	b.WriteString(field)
	b.WriteString(" eq ")
	writeLiteral(&b, value)
	return b.String()
}

// writeLiteral writes value as an OData string literal (see odataString).
func writeLiteral(b *strings.Builder, value string) {
	b.WriteByte('\'')
	for i := 0; i < len(value); i++ {
		if value[i] == '\'' {
			b.WriteByte('\'')
		}
		b.WriteByte(value[i])
	}
	b.WriteByte('\'')
}

// nameTerm looks up a host name as FindMachinesByName does, in one term:
// the exact computerDnsName and, for a name without a dot, the FQDNs whose
// first label it is. Which of the two a machine matched is sorted out on
// our side (see resolveAnswers), so the fallback keeps its meaning.
func nameTerm(name string) string {
	if strings.Contains(name, ".") {
		return eqTerm("computerDnsName", name)
	}
	q := strings.Count(name, "'")
	var b strings.Builder
	b.Grow(2*(len(name)+q) + len("computerDnsName eq '' or startswith(computerDnsName,'.')"))
	b.WriteString("computerDnsName eq ")
	writeLiteral(&b, name)
	b.WriteString(" or startswith(computerDnsName,")
	writeLiteral(&b, name+".")
	b.WriteByte(')')
	return b.String()
}
