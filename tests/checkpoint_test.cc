// placeholder while writing
#include <gtest/gtest.h>
