"""The TFLite file format: records, writer, reader, tables and the LSTM op's slot table."""
