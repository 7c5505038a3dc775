/* Placeholder until the module lands. */
int k8s_placeholder(void);
int k8s_placeholder(void)
{
	return 0;
}
