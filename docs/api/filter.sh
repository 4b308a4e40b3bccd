#!/bin/sh
# Doxygen's INPUT_FILTER (docs/api/Doxyfile): filter.awk, then <word> in a
# comment (a placeholder such as <name>) escaped so that Doxygen does not
# take it for an HTML tag.
awk -f docs/api/filter.awk "$1" | sed 's/<\([a-z][a-z ]*\)>/\\<\1\\>/g'
