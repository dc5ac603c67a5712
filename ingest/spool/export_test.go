package spool

import "os"

// ActiveFile is the file of the segment being written, for tests that
// inject failures into it.
type ActiveFile = activeFile

// WrapFiles makes s wrap every segment file it opens for writing from now
// on with wrap.
func WrapFiles(s *Spool, wrap func(*os.File) ActiveFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrapFile = wrap
}
