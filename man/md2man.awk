# Prints one section of a Markdown file (README.md) as man(7) source, so that the man pages and the
# README share one text. Usage: awk -v section='## Configuration reference' -f man/md2man.awk README.md
# The section runs from its heading to the next heading of the same or a higher level; deeper
# headings become .SS. Handles what the README uses: paragraphs, `code`, **bold**, [links](...),
# "- " bullet lists with indented continuation lines, fenced code blocks and pipe tables (one .TP
# entry per row: the first cell, then the other cells, labelled with their header unless it is the
# last one of a key/meaning or command/answer table).

function esc(s) {
    gsub(/\\/, "\\e", s)
    return s
}

# Leading . or ' would be read as a request.
function line_safe(s) {
    if (s ~ /^[.']/)
        s = "\\&" s
    return s
}

function inline(s,    out, i, j, rest) {
    s = esc(s)
    while (match(s, /!?\[[^]]*\]\([^)]*\)/)) {            # [text](url) -> text; images vanish
        rest = substr(s, RSTART, RLENGTH)
        if (rest ~ /^!/)
            rest = ""
        else {
            sub(/^\[/, "", rest)
            sub(/\]\(.*$/, "", rest)
        }
        s = substr(s, 1, RSTART - 1) rest substr(s, RSTART + RLENGTH)
    }
    out = ""
    while ((i = index(s, "`")) > 0) {                     # `code` -> bold
        j = index(substr(s, i + 1), "`")
        if (j == 0)
            break
        out = out substr(s, 1, i - 1) "\\fB" substr(s, i + 1, j - 1) "\\fR"
        s = substr(s, i + j + 1)
    }
    s = out s
    while (match(s, /\*\*[^*]+\*\*/))
        s = substr(s, 1, RSTART - 1) "\\fB" substr(s, RSTART + 2, RLENGTH - 4) "\\fR" substr(s, RSTART + RLENGTH)
    return s
}

function cells(line, arr,    n, i) {
    sub(/^[ \t]*\|/, "", line)
    sub(/\|[ \t]*$/, "", line)
    n = split(line, arr, "|")
    for (i = 1; i <= n; i++) {
        gsub(/^[ \t]+|[ \t]+$/, "", arr[i])
    }
    return n
}

function flush_par() { para = 0 }

BEGIN {
    in_sec = 0; level = 0; para = 0; code = 0; table = 0; item = 0
}

{
    line = $0
    if (!in_sec) {
        if (line == section) {
            in_sec = 1
            level = length(line) - length(substr(line, index(line, " ")))
        }
        next
    }
    if (code) {
        if (line ~ /^```/) {
            print ".fi"
            print ".RE"
            code = 0
            para = 0
            next
        }
        print line_safe(esc(line))
        next
    }
    if (line ~ /^#+ /) {
        hl = index(line, " ") - 1
        if (hl <= level)
            exit
        title = substr(line, hl + 2)
        gsub(/`/, "", title)
        print ".SS " esc(title)
        para = 0; table = 0; item = 0
        next
    }
    if (line ~ /^```/) {
        print ".PP"
        print ".RS 4"
        print ".nf"
        code = 1
        next
    }
    if (line ~ /^[ \t]*$/) {
        para = 0; table = 0; item = 0
        next
    }
    if (line ~ /^[ \t]*\|/) {
        n = cells(line, c)
        if (!table) {                                     # the header row
            nh = n
            for (i = 1; i <= n; i++)
                head[i] = c[i]
            table = 1
            next
        }
        if (line ~ /^[ \t]*\|[-:| \t]+\|[ \t]*$/)          # the |---|---| row
            next
        print ".TP"
        print line_safe(inline(c[1]))
        first = 1
        for (i = 2; i <= n; i++) {
            if (c[i] == "")
                continue
            label = (i == n && (n == 2 || head[i] == "meaning" || head[i] == "answer" || head[i] == "what")) ? "" : head[i] ": "
            if (!first)
                print ".br"
            print line_safe(inline(label c[i]))
            first = 0
        }
        next
    }
    if (line ~ /^- /) {
        print ".IP \\(bu 2"
        print line_safe(inline(substr(line, 3)))
        item = 1; para = 1
        next
    }
    sub(/^[ \t]+/, "", line)
    if (!para && !item) {
        print ".PP"
        para = 1
    }
    print line_safe(inline(line))
}
