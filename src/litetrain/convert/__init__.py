"""Convert stage: TFLite conversion, the flatbuffer op census, and the post-conversion faithfulness check."""
