// Sizes of the ggml tensor types (GGML_QUANT_SIZES), by type id.
#include "../quant.h"

namespace tactic {

namespace {
const TypeTraits kUnknown = {"unknown", 0, 0, false};

const TypeTraits &lookup(uint32_t t) {
    static const TypeTraits table[] = {
        /* 0 */ {"F32", 1, 4, true},     /* 1 */ {"F16", 1, 2, true},
        /* 2 */ {"Q4_0", 32, 18, true},  /* 3 */ {"Q4_1", 32, 20, true},
        /* 4 */ kUnknown,                /* 5 */ kUnknown,
        /* 6 */ {"Q5_0", 32, 22, true},  /* 7 */ {"Q5_1", 32, 24, true},
        /* 8 */ {"Q8_0", 32, 34, true},  /* 9 */ {"Q8_1", 32, 36, false},
        /* 10 */ {"Q2_K", 256, 84, false}, /* 11 */ {"Q3_K", 256, 110, false},
        /* 12 */ {"Q4_K", 256, 144, true}, /* 13 */ {"Q5_K", 256, 176, true},
        /* 14 */ {"Q6_K", 256, 210, true}, /* 15 */ {"Q8_K", 256, 292, false},
        /* 16 */ {"IQ2_XXS", 256, 66, false}, /* 17 */ {"IQ2_XS", 256, 74, false},
        /* 18 */ {"IQ3_XXS", 256, 98, false}, /* 19 */ {"IQ1_S", 256, 50, false},
        /* 20 */ {"IQ4_NL", 32, 18, false},   /* 21 */ {"IQ3_S", 256, 110, false},
        /* 22 */ {"IQ2_S", 256, 82, false},   /* 23 */ {"IQ4_XS", 256, 136, false},
        /* 24 */ {"I8", 1, 1, false},  /* 25 */ {"I16", 1, 2, false},
        /* 26 */ {"I32", 1, 4, false}, /* 27 */ {"I64", 1, 8, false},
        /* 28 */ {"F64", 1, 8, false}, /* 29 */ {"IQ1_M", 256, 56, false},
        /* 30 */ {"BF16", 1, 2, true},
        /* 31 */ kUnknown, /* 32 */ kUnknown, /* 33 */ kUnknown,
        /* 34 */ {"TQ1_0", 256, 54, false}, /* 35 */ {"TQ2_0", 256, 66, false},
        /* 36 */ kUnknown, /* 37 */ kUnknown, /* 38 */ kUnknown,
        /* 39 */ {"MXFP4", 32, 17, false},
    };
    return t < sizeof(table) / sizeof(table[0]) ? table[t] : kUnknown;
}
}  // namespace

const TypeTraits &type_traits(uint32_t type) { return lookup(type); }

size_t row_size(uint32_t type, int64_t n) {
    const TypeTraits &t = lookup(type);
    if (t.block_size == 0 || n < 0) return 0;
    return size_t(n / t.block_size) * t.type_size;
}

}  // namespace tactic
