// SluiceClient: placeholder until the layer lands.
