"""Example convparity plugin: the loop-based convolution of BrightLamp's 2019 blog post (`blog_conv`)."""
