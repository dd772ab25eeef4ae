mod emails;
