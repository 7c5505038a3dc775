/* Placeholder until the module lands. */
int nlink_placeholder(void);
int nlink_placeholder(void)
{
	return 0;
}
