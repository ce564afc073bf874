package infill

import "slices"

// withPrelude puts the prelude's tokens at the start of the canvas (after
// a BOS or EOS the layout put first), cut from its start to the room the
// model's positions leave, and shifts the spans. An EOS token ends the
// prelude where the model has one: models are trained on files joined by
// EOS, so the prelude reads as the file before this one (with the built-in
// model the same exact match as no separator on 180 dev cases, and on a
// copy probe the only layout whose answer took the prelude's call).
func (e *Engine) withPrelude(c *canvas, prelude string) *canvas {
	if prelude == "" {
		return c
	}
	sep := e.ni.eos >= 0
	room := len(prelude) // more tokens than bytes never happens
	if e.ni.maxPositions > 0 {
		room = e.ni.maxPositions - len(c.tokens)
		if sep {
			room--
		}
	}
	toks := encodeTail(e.tok, prelude, room)
	if len(toks) == 0 {
		return c
	}
	if sep {
		toks = append(toks, e.ni.eos)
	}
	at := 0
	if len(c.tokens) > 0 && (c.tokens[0] == e.ni.bos || c.tokens[0] == e.ni.eos) {
		at = 1
	}
	out := &canvas{tokens: slices.Insert(slices.Clone(c.tokens), at, toks...), spans: slices.Clone(c.spans)}
	for i := range out.spans {
		out.spans[i].pos += len(toks)
	}
	return out
}
