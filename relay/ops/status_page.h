#pragma once
// The status page served at GET / on the ops listener: relay/ops/status_page.html, embedded at
// build time (cmake/embed_text.cmake). A self-contained HTML document (inline CSS and JavaScript,
// no external load) that polls /status and /metrics from the same origin. Thread-safe.

#include <string_view>

namespace relay::ops {

// The bytes of relay/ops/status_page.html (UTF-8); valid for the life of the process.
std::string_view status_page_html();

}  // namespace relay::ops
