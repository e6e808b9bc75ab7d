/* In the build tree, #include <gst/unetseg/gstunetsegmeta.h> (the installed spelling) finds this
 * file through gst-plugin/meta/meson.build's include directory; installed, the header itself lies
 * at gst/unetseg/. Not installed. */
#include "../../gstunetsegmeta.h"
