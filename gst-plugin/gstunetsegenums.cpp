/* The GEnum types of unetseg's enum properties. Mode and backend are libunetseg's own enums:
 * the values are the library's, checked below, so the element casts and never translates. */
#include "gstunetsegenums.h"

#include "gstunetseg.h"
#include "unetseg/compositor.hpp"
#include "unetseg/segmenter.hpp"

#define SAME_VALUE(gst, lib) static_assert ((int) (gst) == (int) (lib), #gst " != " #lib)
SAME_VALUE (GST_UNETSEG_MODE_NONE, unetseg::Mode::None);
SAME_VALUE (GST_UNETSEG_MODE_OVERLAY, unetseg::Mode::Overlay);
SAME_VALUE (GST_UNETSEG_MODE_ALPHA, unetseg::Mode::Alpha);
SAME_VALUE (GST_UNETSEG_MODE_BLUR, unetseg::Mode::Blur);
SAME_VALUE (GST_UNETSEG_MODE_REPLACE, unetseg::Mode::Replace);
SAME_VALUE (GST_UNETSEG_MODE_MASK, unetseg::Mode::Mask);
SAME_VALUE (GST_UNETSEG_BACKEND_AUTO, unetseg::Backend::Auto);
SAME_VALUE (GST_UNETSEG_BACKEND_CPU, unetseg::Backend::Cpu);
SAME_VALUE (GST_UNETSEG_BACKEND_CUDA, unetseg::Backend::Cuda);
SAME_VALUE (GST_UNETSEG_BACKEND_CUDA_FP16, unetseg::Backend::CudaFp16);

static GType
register_enum (GType * type, const gchar * name, const GEnumValue * values)
{
  if (g_once_init_enter (type))
    g_once_init_leave (type, g_enum_register_static (name, values));
  return *type;
}

GType
gst_unetseg_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_UNETSEG_MODE_NONE, "Attach the mask meta only; pixels untouched (passthrough)",
        "none"},
    {GST_UNETSEG_MODE_OVERLAY, "Tint the foreground (multi-class: a colour per class)",
        "overlay"},
    {GST_UNETSEG_MODE_ALPHA, "Write the mask into the alpha channel (for compositor)",
        "alpha"},
    {GST_UNETSEG_MODE_BLUR, "Blur the background, keep the foreground sharp", "blur"},
    {GST_UNETSEG_MODE_REPLACE, "Replace the background with a colour or an image",
        "replace"},
    {GST_UNETSEG_MODE_MASK, "Show the mask itself: white foreground on black", "mask"},
    {0, NULL, NULL},
  };
  return register_enum (&type, "GstUnetsegMode", values);
}

GType
gst_unetseg_backend_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_UNETSEG_BACKEND_AUTO, "CUDA if OpenCV has it and a GPU works, else the CPU", "auto"},
    {GST_UNETSEG_BACKEND_CPU, "OpenCV's own CPU backend", "cpu"},
    {GST_UNETSEG_BACKEND_CUDA, "OpenCV's CUDA backend, 32-bit float", "cuda"},
    {GST_UNETSEG_BACKEND_CUDA_FP16, "OpenCV's CUDA backend, 16-bit float", "cuda-fp16"},
    {0, NULL, NULL},
  };
  return register_enum (&type, "GstUnetsegBackend", values);
}

GType
gst_unetseg_live_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_UNETSEG_LIVE_AUTO, "Live when upstream is live (a camera), offline otherwise",
        "auto"},
    {GST_UNETSEG_LIVE_ON, "The model runs on its own thread on the newest frame; every frame "
          "leaves at once with the newest mask", "on"},
    {GST_UNETSEG_LIVE_OFF, "Every frame waits for the model and gets its own mask", "off"},
    {0, NULL, NULL},
  };
  return register_enum (&type, "GstUnetsegLive", values);
}
