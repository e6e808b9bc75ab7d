/* The GEnum types of unetseg's enum properties. */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define GST_TYPE_UNETSEG_MODE (gst_unetseg_mode_get_type ())
GType gst_unetseg_mode_get_type (void);
#define GST_TYPE_UNETSEG_BACKEND (gst_unetseg_backend_get_type ())
GType gst_unetseg_backend_get_type (void);
#define GST_TYPE_UNETSEG_LIVE (gst_unetseg_live_get_type ())
GType gst_unetseg_live_get_type (void);

G_END_DECLS
