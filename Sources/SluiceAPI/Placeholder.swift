// SluiceAPI: placeholder until the layer lands.
