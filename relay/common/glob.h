#pragma once
// Topic globs for subscriptions: "*" matches any run of characters (dots included), "?" one
// character; everything else is literal. "order.*" matches "order.paid" and "order.item.added".

#include <string_view>

namespace relay {

bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace relay
