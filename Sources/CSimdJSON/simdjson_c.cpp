// Implementation of the C API in include/simdjson_c.h over simdjson's DOM parser.
//
// Each bo_json_parser owns a simdjson::dom::parser, a padded copy of the input and the
// flattened node array; all three are reused between parses. No global mutable state:
// a parser may be used by one thread at a time, distinct parsers by distinct threads.
// No C++ exception leaves this file: simdjson is used through its error-code API and
// every entry point is additionally wrapped in try/catch(...).

#include "simdjson_c.h"

#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

namespace {

// Our own error codes, above simdjson's error_code range.
constexpr int kErrorTooDeep = 1000;
constexpr int kErrorTooManyNodes = 1001;
constexpr int kErrorInvalidArgument = 1002;

// Maximum nesting of objects/arrays (the root container is level 1; scalars do not count).
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 1000000;

static_assert(simdjson::NUM_ERROR_CODES < kErrorTooDeep,
              "own error codes must lie above simdjson's error_code range");

} // namespace

struct bo_json_parser {
    simdjson::dom::parser parser;
    std::unique_ptr<char[]> buffer;  // capacity + SIMDJSON_PADDING bytes
    size_t capacity = 0;
    std::vector<bo_json_node> nodes;
};

namespace {

struct Flattener {
    std::vector<bo_json_node> &nodes;

    // Appends `element` (and its subtree) to `nodes`. `depth` is the number of
    // enclosing containers. Returns 0 or an error code.
    int flatten(simdjson::dom::element element, int32_t parent, int depth,
                std::string_view key, bool has_key) {
        if (nodes.size() >= kMaxNodes) { return kErrorTooManyNodes; }

        bo_json_node node{};  // all fields zero / NULL
        node.parent = parent;
        if (has_key) {
            node.key = key.data();
            node.key_length = static_cast<uint32_t>(key.size());
        }

        const size_t index = nodes.size();
        using simdjson::dom::element_type;
        switch (element.type()) {
        case element_type::OBJECT: {
            if (depth + 1 > kMaxDepth) { return kErrorTooDeep; }
            simdjson::dom::object object;
            if (auto err = element.get(object)) { return err; }
            node.type = BO_JSON_OBJECT;
            nodes.push_back(node);
            int32_t children = 0;
            for (simdjson::dom::key_value_pair field : object) {
                int err = flatten(field.value, static_cast<int32_t>(index), depth + 1,
                                  field.key, true);
                if (err) { return err; }
                ++children;
            }
            nodes[index].child_count = children;
            nodes[index].next = static_cast<int32_t>(nodes.size());
            return 0;
        }
        case element_type::ARRAY: {
            if (depth + 1 > kMaxDepth) { return kErrorTooDeep; }
            simdjson::dom::array array;
            if (auto err = element.get(array)) { return err; }
            node.type = BO_JSON_ARRAY;
            nodes.push_back(node);
            int32_t children = 0;
            for (simdjson::dom::element child : array) {
                int err = flatten(child, static_cast<int32_t>(index), depth + 1,
                                  std::string_view(), false);
                if (err) { return err; }
                ++children;
            }
            nodes[index].child_count = children;
            nodes[index].next = static_cast<int32_t>(nodes.size());
            return 0;
        }
        case element_type::STRING: {
            std::string_view value;
            if (auto err = element.get(value)) { return err; }
            node.type = BO_JSON_STRING;
            node.string = value.data();  // in the dom::parser's string buffer
            node.string_length = static_cast<uint32_t>(value.size());
            break;
        }
        case element_type::INT64: {
            int64_t value;
            if (auto err = element.get(value)) { return err; }
            node.type = BO_JSON_INT64;
            node.int64 = value;
            node.number = static_cast<double>(value);
            break;
        }
        case element_type::UINT64: {
            uint64_t value;
            if (auto err = element.get(value)) { return err; }
            node.type = BO_JSON_UINT64;
            node.uint64 = value;
            if (value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                node.int64 = static_cast<int64_t>(value);
            }
            node.number = static_cast<double>(value);
            break;
        }
        case element_type::DOUBLE: {
            double value;
            if (auto err = element.get(value)) { return err; }
            node.type = BO_JSON_DOUBLE;
            node.number = value;
            break;
        }
        case element_type::BOOL: {
            bool value;
            if (auto err = element.get(value)) { return err; }
            node.type = value ? BO_JSON_TRUE : BO_JSON_FALSE;
            break;
        }
        case element_type::NULL_VALUE:
            node.type = BO_JSON_NULL;
            break;
        default:
            return simdjson::UNEXPECTED_ERROR;
        }
        node.next = static_cast<int32_t>(index + 1);
        nodes.push_back(node);
        return 0;
    }
};

} // namespace

extern "C" {

bo_json_parser *bo_json_parser_new(void) {
    try {
        return new (std::nothrow) bo_json_parser();
    } catch (...) {
        return nullptr;
    }
}

void bo_json_parser_free(bo_json_parser *parser) {
    try {
        delete parser;
    } catch (...) {
    }
}

int bo_json_parse(bo_json_parser *parser, const char *data, size_t length,
                  const bo_json_node **nodes, size_t *count) {
    if (nodes) { *nodes = nullptr; }
    if (count) { *count = 0; }
    if (!parser || !nodes || !count || (!data && length > 0)) {
        return kErrorInvalidArgument;
    }
    try {
        parser->nodes.clear();
        if (length > parser->parser.max_capacity()) { return simdjson::CAPACITY; }

        // Copy the input into the padded buffer, growing it as needed.
        if (!parser->buffer || length > parser->capacity) {
            size_t capacity = parser->capacity + parser->capacity / 2;
            if (capacity < length) { capacity = length; }
            if (capacity < 4096) { capacity = 4096; }
            std::unique_ptr<char[]> buffer(
                new (std::nothrow) char[capacity + simdjson::SIMDJSON_PADDING]);
            if (!buffer) { return simdjson::MEMALLOC; }
            parser->buffer = std::move(buffer);
            parser->capacity = capacity;
        }
        char *buffer = parser->buffer.get();
        if (length > 0) { std::memcpy(buffer, data, length); }
        std::memset(buffer + length, 0, simdjson::SIMDJSON_PADDING);

        simdjson::dom::element root;
        if (auto err = parser->parser.parse(buffer, length, false).get(root)) {
            return err;
        }

        Flattener flattener{parser->nodes};
        if (int err = flattener.flatten(root, -1, 0, std::string_view(), false)) {
            parser->nodes.clear();
            return err;
        }
        *nodes = parser->nodes.data();
        *count = parser->nodes.size();
        return 0;
    } catch (const std::bad_alloc &) {
        parser->nodes.clear();
        return simdjson::MEMALLOC;
    } catch (...) {
        parser->nodes.clear();
        return simdjson::UNEXPECTED_ERROR;
    }
}

const char *bo_json_error_message(int code) {
    switch (code) {
    case 0:
        return "no error";
    case kErrorTooDeep:
        return "document nested deeper than 64 levels";
    case kErrorTooManyNodes:
        return "document has more than 1,000,000 values";
    case kErrorInvalidArgument:
        return "invalid argument (NULL parser, output pointer or data)";
    default:
        break;
    }
    if (code > 0 && code < simdjson::NUM_ERROR_CODES) {
        return simdjson::error_message(static_cast<simdjson::error_code>(code));
    }
    return "unknown error code";
}

} // extern "C"
