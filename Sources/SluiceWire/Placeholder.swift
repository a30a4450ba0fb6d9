// SluiceWire: placeholder until the layer lands.
