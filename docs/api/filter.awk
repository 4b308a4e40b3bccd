# Doxygen's INPUT_FILTER for oxide's headers (docs/api/Doxyfile, through
# filter.sh): the headers are documented in plain C comments, and this
# turns them into Doxygen's (the only line it adds closes a group):
#   - the comment opening a header documents the file (@file);
#   - a comment at the start of a line documents what follows it; when
#     several declarations follow it without a blank line, it documents all
#     of them (a member group, @{ ... @}, with DISTRIBUTE_GROUP_DOC);
#   - a comment after a struct member, an enumerator or a declaration on
#     the same line documents it (/**<);
#   - a one-line "/* ---- section ---- */" separator stays a plain comment;
#     a section comment that goes on documents what follows it.
# A group closes at a blank line, at the next comment, and at the end of
# the preprocessor branch it opened in.
function emit(s) {
    out[++n] = s
}
function close_group() {
    if (group) {
        # On a line of its own: appended to a #define it would join the macro.
        emit("/** @} */")
        group = 0
    }
}
function open_group() {
    sub(/\*\/[ \t]*$/, "*/ /** @{ */")
    group = 1
    group_pp = pp
}
NR == 1 && /^\/\* / {
    parts = split(FILENAME, path, "/")
    sub(/^\/\* /, "/** @file " path[parts] " ")
    in_comment = ($0 !~ /\*\//)
    doc_comment = 0
    emit($0)
    next
}
in_comment {
    if ($0 ~ /\*\//) {
        in_comment = 0
        if (doc_comment)
            open_group()
    }
    emit($0)
    next
}
/^[ \t]*$/ {
    if (group) {
        emit("/** @} */")
        group = 0
    } else {
        emit($0)
    }
    next
}
/^#[ \t]*if/ {
    pp++
}
/^#[ \t]*(else|elif|endif)/ {
    if (group && group_pp == pp)
        close_group()
    if ($0 ~ /^#[ \t]*endif/)
        pp--
    emit($0)
    next
}
/^\/\* clang-format/ || (/^\/\* ----/ && /\*\//) {
    close_group()
    in_comment = ($0 !~ /\*\//)
    doc_comment = 0
    emit($0)
    next
}
/^\/\* / && group && group_pp < pp {
    # Inside an #if branch of a group opened before the #if: the group's
    # comment documents what is here; this one stays plain.
    in_comment = ($0 !~ /\*\//)
    doc_comment = 0
    emit($0)
    next
}
/^\/\* / {
    close_group()
    sub(/^\/\* /, "/** ")
    doc_comment = 1
    if ($0 ~ /\*\//)
        open_group()
    else
        in_comment = 1
    emit($0)
    next
}
/^    [^ \/*].*[;,][ \t]*\/\* / && depth > 0 && fn_depth == 0 {
    sub(/\/\* /, "/**< ")
}
/^[A-Za-z_#].*[;)a-z0-9][ \t]*\/\* / && fn_depth == 0 && depth == 0 {
    sub(/\/\* /, "/**< ")
}
{
    # Inside an aggregate (struct/union/enum) or a function body? For the
    # member-comment rule above.
    if ($0 ~ /^(typedef )?(struct|union|enum)[^;]*\{/)
        depth++
    else if ($0 ~ /^(static inline|[A-Za-z_].*\))[ \t]*$/ && $0 !~ /;/)
        fn_pending = 1
    if ($0 ~ /^\{/ && fn_pending) {
        fn_depth = 1
        fn_pending = 0
    } else if ($0 ~ /^\}/) {
        if (fn_depth)
            fn_depth = 0
        else if (depth > 0)
            depth--
    }
    emit($0)
}
END {
    close_group()
    for (i = 1; i <= n; i++)
        print out[i]
}
