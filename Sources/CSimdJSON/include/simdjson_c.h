#ifndef BACKORDER_SIMDJSON_C_H
#define BACKORDER_SIMDJSON_C_H

// A plain C API over simdjson's DOM parser, for Swift (which cannot call simdjson's C++
// API directly). One parser parses one NDJSON line at a time, so that a bad line is
// reported alone, and flattens the document into an array of nodes in document order.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BO_JSON_OBJECT = 1,
    BO_JSON_ARRAY = 2,
    BO_JSON_STRING = 3,
    BO_JSON_INT64 = 4,
    BO_JSON_UINT64 = 5,
    BO_JSON_DOUBLE = 6,
    BO_JSON_TRUE = 7,
    BO_JSON_FALSE = 8,
    BO_JSON_NULL = 9
} bo_json_type;

/// One value of the document. Nodes are in document (pre-order) order: an object or
/// array node is followed by its children; `next` is the index of the node after the
/// whole subtree (its next sibling, or where the parent's next sibling starts).
typedef struct {
    int32_t type;          // bo_json_type
    int32_t parent;        // index of the enclosing object/array node, -1 for the root
    int32_t next;          // index after this node's subtree
    int32_t child_count;   // fields of an object, elements of an array, else 0
    const char *key;       // field name when the parent is an object, else NULL
    uint32_t key_length;
    uint32_t string_length;
    const char *string;    // BO_JSON_STRING: UTF-8 bytes (not NUL-terminated), else NULL
    int64_t int64;         // BO_JSON_INT64 (and BO_JSON_UINT64 when it fits)
    uint64_t uint64;       // BO_JSON_UINT64
    double number;         // BO_JSON_DOUBLE, also set for the integer types
} bo_json_node;

typedef struct bo_json_parser bo_json_parser;

/// A new parser, or NULL when memory is short.
bo_json_parser *bo_json_parser_new(void);
void bo_json_parser_free(bo_json_parser *parser);

/// Parses one JSON document of `length` bytes (no padding needed: the parser copies it
/// into its own padded buffer). Returns 0 and sets `nodes`/`count` (valid until the
/// next parse or free), or a non-zero error code: a simdjson error code, or 1000 when
/// objects/arrays nest deeper than 64 levels, 1001 when the document has more than
/// 1,000,000 nodes, 1002 for a NULL parser/nodes/count (or NULL data with length > 0).
/// String and key pointers point into the parser's storage, valid as long as `nodes`.
int bo_json_parse(bo_json_parser *parser, const char *data, size_t length,
                  const bo_json_node **nodes, size_t *count);

/// A static, human-readable message for an error code from bo_json_parse.
const char *bo_json_error_message(int code);

#ifdef __cplusplus
}
#endif

#endif
