// Bounds for JSON and text that come from files a user (or an attacker) hands us.
// nlohmann's dump() and destructor recurse once per nesting level, so a 60 000-deep
// "[[[[..." header overflows the stack; and an error message that echoes a
// multi-megabyte value, or raw binary bytes, floods or garbles the terminal.
// parse_json_bounded stops at a nesting depth no legitimate file comes near;
// excerpt() is what a message may show of a value or of a line of a file.
#pragma once

#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace eqprop {

// Deeper than any config or checkpoint header we write (they nest 3-4 levels),
// far shallower than what exhausts an 8 MiB stack.
constexpr int kMaxJsonDepth = 64;
// What a message shows of a value before "...".
constexpr std::size_t kExcerptChars = 200;

// Thrown by parse_json_bounded for a document nested deeper than allowed; callers
// wrap it (like nlohmann's parse_error) into their own typed error.
class JsonDepthError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `text` parsed like Json::parse, except that an object or array nested more than
// `max_depth` levels deep (the top-level value is level 1) throws JsonDepthError as
// soon as the parser reaches it, before anything that deep is built. Invalid JSON
// throws nlohmann's parse_error as usual; `ignore_comments` as in Json::parse.
template <class Json = nlohmann::json>
Json parse_json_bounded(std::string_view text, int max_depth = kMaxJsonDepth, bool ignore_comments = false) {
  // The callback sees the depth of the container that is starting (0 for the top
  // level); returning true keeps every value, so the result equals Json::parse.
  const typename Json::parser_callback_t limit = [max_depth](int depth, typename Json::parse_event_t event,
                                                             Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw JsonDepthError("JSON nested deeper than " + std::to_string(max_depth) + " levels");
    return true;
  };
  return Json::parse(text.begin(), text.end(), limit, /*allow_exceptions=*/true, ignore_comments);
}

// At most `max_chars` characters of `text` for a message: bytes outside printable
// ASCII are written \xNN (so binary garbage cannot drive the terminal), and a
// longer text ends in "... (N bytes)".
inline std::string excerpt(std::string_view text, std::size_t max_chars = kExcerptChars) {
  std::string out;
  std::size_t i = 0;
  for (; i < text.size() && out.size() < max_chars; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  if (i < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

// A JSON value as a message shows it: compact, invalid UTF-8 replaced, cut like a
// text excerpt. Values reaching here came through parse_json_bounded or our own
// code, so dump() itself recurses a bounded number of levels.
template <class Json>
std::string excerpt_json(const Json& value, std::size_t max_chars = kExcerptChars) {
  return excerpt(value.dump(-1, ' ', false, Json::error_handler_t::replace), max_chars);
}

}  // namespace eqprop
