// OASIS CAP schema validation (CAP 1.0, 1.1, 1.2) with libxml2.
//
// The three XSDs are compiled into the library (schema/, embedded by CMake),
// parsed once per process on first use and shared read-only afterwards, so
// validation never reads the file system or the network.
//
// Thread safety: all functions may be called from any thread (each call uses
// its own validation context over the shared, immutable schema).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct _xmlNode;

namespace amparo::ingest {

enum class CapVersion { k10, k11, k12 };

inline constexpr std::string_view kCap10Namespace = "http://www.incident.com/cap/1.0";
inline constexpr std::string_view kCap11Namespace = "urn:oasis:names:tc:emergency:cap:1.1";
inline constexpr std::string_view kCap12Namespace = "urn:oasis:names:tc:emergency:cap:1.2";

// The CAP version of a namespace URI, nullopt for anything else.
std::optional<CapVersion> CapVersionFromNamespace(std::string_view ns);
std::string_view CapVersionName(CapVersion version);  // "1.0", "1.1", "1.2"

// Validates the <alert> element (a root or one embedded in a feed) against
// the schema of `version`. Returns the validity errors, empty when valid:
//   "line 9: Element 'info': This element is not expected. Expected is ..."
// Errors: INTERNAL when the embedded schema cannot be compiled (a build bug).
Result<std::vector<std::string>> ValidateCapElement(_xmlNode* alert, CapVersion version);

}  // namespace amparo::ingest
