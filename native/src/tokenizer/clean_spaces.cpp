#include "clean_spaces.h"

namespace tactic {

// llama.cpp's clean-up of a detokenized BPE text, three passes done in place as it
// does them (a later check may see a byte an earlier pass changed): no space before
// ?!., ; none around a lone apostrophe; none before the contractions 's 'm 're 've.
void clean_spaces(std::string &s) {
    char *t = s.data();
    size_t n = s.size();
    if (n == 0) return;
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {  // " ?", " !", " .", " ,"
        const char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
        t[w++] = x;
    }
    n = w;
    w = 1;
    for (size_t i = 1; i < n; i++) {  // " ' " -> "'"
        const char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            w--;
            t[++i] = '\0';
        }
        t[w++] = x;
    }
    n = w;
    w = 1;
    for (size_t i = 1; i < n; i++) {  // " 's", " 'm", " 're", " 've"
        const char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            const char a = t[i + 1];
            if (a == 's' || a == 'm') w--;
            else if (i + 2 < n && (a == 'r' || a == 'v') && t[i + 2] == 'e') w--;
        }
        t[w++] = x;
    }
    s.resize(w);
}

}  // namespace tactic
