/* The C side of the layout comparison (layout.h). */
#include "layout.h"

#include <stdalign.h>

#define SIZE_ALIGN(type)    sizeof(type), alignof(type),
#define OFFSET(type, field) offsetof(type, field),

const size_t ox_test_c_layout[] = {OX_TEST_LAYOUT(SIZE_ALIGN, OFFSET) 0};
